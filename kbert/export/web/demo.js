// The kbert model in model.tflite, run by MediaPipe Tasks for Web (text): the WASM runtime tokenizes the raw text
// with the vocabulary packed in the file. Everything is served from this folder (`npm ci` brings the runtime).
import {
  FilesetResolver,
  TextClassifier,
  TextEmbedder,
} from "./node_modules/@mediapipe/tasks-text/text_bundle.mjs";

const $ = (id) => document.getElementById(id);

function showClassification(runner) {
  const result = runner.classify($("text").value);
  const categories = [...result.classifications[0].categories].sort((a, b) => b.score - a.score);
  $("bars").replaceChildren(
    ...categories.map((category) => {
      const bar = document.createElement("div");
      bar.className = "bar";
      bar.dataset.label = category.categoryName || String(category.index);
      bar.dataset.score = String(category.score);
      bar.innerHTML =
        '<span class="name"></span><span class="track"><span class="fill"></span></span><span class="value"></span>';
      bar.querySelector(".name").textContent = bar.dataset.label;
      bar.querySelector(".fill").style.width = `${(100 * category.score).toFixed(2)}%`;
      bar.querySelector(".value").textContent = `${(100 * category.score).toFixed(2)} %`;
      return bar;
    }),
  );
}

function showSimilarity(runner) {
  const first = runner.embed($("first").value).embeddings[0];
  const second = runner.embed($("second").value).embeddings[0];
  const similarity = TextEmbedder.cosineSimilarity(first, second);
  $("similarity").dataset.similarity = String(similarity);
  $("similarity").textContent = similarity.toFixed(4);
}

// ?check=<file>: types each text of the JSON list <file> into the page, reads what the bars show and posts it to
// /check (used by kbert's browser test; a person never needs it).
async function selfCheck(file, show) {
  const texts = await (await fetch(file)).json();
  const shown = texts.map((text) => {
    $("text").value = text;
    show();
    return Object.fromEntries(
      [...document.querySelectorAll("#bars .bar")].map((bar) => [bar.dataset.label, Number(bar.dataset.score)]),
    );
  });
  await fetch("/check", { method: "POST", body: JSON.stringify({ texts, shown }) });
}

async function main() {
  const config = await (await fetch("demo.json")).json();
  $("title").textContent = config.title;
  const fileset = await FilesetResolver.forTextTasks("./node_modules/@mediapipe/tasks-text/wasm");
  const Task = config.task === "TextClassifier" ? TextClassifier : TextEmbedder;
  const runner = await Task.createFromOptions(fileset, { baseOptions: { modelAssetPath: "model.tflite" } });
  const classify = config.task === "TextClassifier";
  const show = classify ? () => showClassification(runner) : () => showSimilarity(runner);
  $(classify ? "classifier" : "embedder").hidden = false;
  $("status").textContent = classify ? "Type a text: the bars are the model's probabilities." : "Type two texts.";
  for (const field of document.querySelectorAll("textarea")) field.addEventListener("input", show);
  show();
  const check = new URLSearchParams(location.search).get("check");
  if (check) await selfCheck(check, show);
}

main().catch((error) => {
  $("status").textContent = `error: ${error.message || error}`;
  fetch("/check", { method: "POST", body: JSON.stringify({ error: String(error.stack || error) }) }).catch(() => {});
});
