// Draws pruned documents: kept sentences marked, each sentence's keep-probability on hover,
// characters (and tokens) kept. Shared by the service's page (GET /) and `prune --html` files.
// The rule is process()'s: a sentence is kept when its keep-probability exceeds the threshold
// (a threshold of 0 keeps every sentence); consecutive kept sentences share one <mark>.
"use strict";

function keptSentences(doc, threshold) {
  return doc.probabilities.map((p) => threshold <= 0 || p > threshold);
}

// Characters of the pruned text: each run of kept sentences, and the whitespace after every
// run but the last (as process() joins them into pruned_context).
function keptCharacters(doc, keep) {
  const runs = [];
  doc.spans.forEach(([start, end], i) => {
    if (!keep[i]) return;
    if (i > 0 && keep[i - 1] && runs.length) runs[runs.length - 1][1] = end;
    else runs.push([start, end]);
  });
  let total = 0;
  runs.forEach(([start, end], r) => {
    if (r < runs.length - 1) {
      while (end < doc.text.length && /\s/.test(doc.text[end])) end += 1;
    }
    total += end - start;
  });
  return total;
}

function renderDocument(container, doc, threshold) {
  const keep = keptSentences(doc, threshold);
  const text = doc.text;
  const body = document.createElement("div");
  body.className = "text";
  let position = 0;
  let mark = null;
  doc.spans.forEach(([start, end], i) => {
    const gap = text.slice(position, start);
    if (mark && keep[i]) mark.append(gap);
    else {
      mark = null;
      body.append(gap);
    }
    const sentence = document.createElement("span");
    sentence.className = "sentence";
    sentence.dataset.index = String(i);
    sentence.title = "keep-probability " + doc.probabilities[i].toFixed(3);
    sentence.textContent = text.slice(start, end);
    if (keep[i]) {
      if (!mark) {
        mark = document.createElement("mark");
        body.append(mark);
      }
      mark.append(sentence);
    } else {
      body.append(sentence);
    }
    position = end;
  });
  body.append(text.slice(position));
  const kept = keptCharacters(doc, keep);
  const parts = [`kept ${kept} of ${text.length} characters`];
  if (doc.tokens) {
    const all = doc.tokens.reduce((a, b) => a + b, 0);
    const some = doc.tokens.reduce((a, b, i) => a + (keep[i] ? b : 0), 0);
    parts.push(`${some} of ${all} tokens`);
  }
  const stats = document.createElement("div");
  stats.className = "stats";
  stats.textContent = parts.join(", ");
  const heading = document.createElement("div");
  heading.className = "heading";
  heading.textContent =
    (doc.name ? doc.name + " · " : "") +
    (doc.score === null || doc.score === undefined
      ? "no reranking score (pruning_only)"
      : "reranking score " + doc.score.toFixed(3));
  const box = document.createElement("section");
  box.className = "document";
  box.append(heading, body, stats);
  container.append(box);
}

function renderAll(container, documents, threshold) {
  container.replaceChildren();
  documents.forEach((doc) => renderDocument(container, doc, threshold));
}

// The threshold slider: calls redraw(threshold) on every move.
function bindSlider(slider, label, redraw) {
  const update = () => {
    const value = parseFloat(slider.value);
    label.textContent = value.toFixed(2);
    redraw(value);
  };
  slider.addEventListener("input", update);
  return update;
}
