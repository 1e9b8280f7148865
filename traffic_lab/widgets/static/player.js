// traffic_lab StreamPlayer front end (anywidget ES module; no build step, no CDN).
// The kernel holds the stream and the cursor; this page sends commands ("step", "play",
// "pause", "reset", "tick") and shows what the kernel's traits say. Playing is paced here:
// after each tick the kernel sends {type: "tick", wait_ms}, and the next tick is sent after
// that wait while `playing` holds, so a pause takes effect between two ticks.
// Text from the capture arrives as data and is set with textContent; only `detail` (HTML the
// kernel built with every capture text escaped) is set as markup.

const SPEEDS = ["1x", "2x", "10x", "max"];
const MARKS = { same: "\u2713", differ: "\u2713", failed: "\u2717", next: "\u25b6" };

function node(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function render({ model, el }) {
  const root = node("div", "tl-player");
  root.tabIndex = 0;
  el.appendChild(root);
  let timer = null;

  const head = node("div", "tl-p-head");
  const headText = node("span", "tl-p-headtext");
  head.append(node("b", null, "Stream player"), document.createTextNode(" \u00b7 "), headText);

  const controls = node("div", "tl-p-controls");
  const target = node("input", "tl-p-target");
  target.type = "text";
  target.placeholder = "the stream's responder";
  target.title = "a base URL to send the recorded requests to; empty: the recorded responses";
  const stepButton = node("button", "tl-p-button tl-p-step", "Step \u25b8");
  stepButton.title = "play the next exchange (\u2192)";
  const playButton = node("button", "tl-p-button tl-p-play tl-p-primary", "Play \u25b6");
  playButton.title = "play the rest at the chosen speed (space)";
  const speed = node("select", "tl-p-speed");
  speed.title = "speed: the recorded pace, sped up; max: as fast as the target answers";
  for (const s of SPEEDS) speed.appendChild(new Option(s, s));
  const resetButton = node("button", "tl-p-button tl-p-reset", "Reset \u21ba");
  const targetLabel = node("label", "tl-p-label", "Target");
  controls.append(targetLabel, target, stepButton, playButton, speed, resetButton);

  const progress = node("div", "tl-p-progress");
  const track = node("div", "tl-p-track");
  const fill = node("div", "tl-p-fill");
  track.appendChild(fill);
  const progressText = node("span", "tl-p-text");
  progress.append(track, progressText);

  const error = node("div", "tl-p-error");
  const table = node("table", "tl-p-rows");
  const thead = node("thead");
  const headRow = node("tr");
  for (const h of ["", "#", "request", "recorded", "answered"]) headRow.appendChild(node("th", null, h));
  thead.appendChild(headRow);
  const tbody = node("tbody");
  table.append(thead, tbody);
  const detail = node("div", "tl-p-detail");
  root.append(head, controls, progress, error, table, detail);

  const send = (cmd) => model.send({ cmd });
  stepButton.addEventListener("click", () => send("step"));
  resetButton.addEventListener("click", () => send("reset"));
  playButton.addEventListener("click", () => send(model.get("playing") ? "pause" : "play"));
  speed.addEventListener("change", () => {
    model.set("speed", speed.value);
    model.save_changes();
  });
  target.addEventListener("change", () => {
    model.set("target", target.value);
    model.save_changes();
  });
  root.addEventListener("keydown", (event) => {
    if (event.target === target || event.target === speed) return;
    if (event.key === "ArrowRight") {
      send("step");
      event.preventDefault();
    } else if (event.key === " ") {
      send(model.get("playing") ? "pause" : "play");
      event.preventDefault();
    }
  });
  model.on("msg:custom", (msg) => {
    if (msg && msg.type === "tick" && model.get("playing")) {
      clearTimeout(timer);
      timer = setTimeout(() => {
        if (model.get("playing")) send("tick");
      }, Math.max(0, Number(msg.wait_ms) || 0));
    }
  });

  function showHeader() {
    headText.textContent = `${model.get("total").toLocaleString()} exchanges \u00b7 ${model.get("header")}`;
    if (document.activeElement !== target) target.value = model.get("target");
    speed.value = model.get("speed");
  }

  function showProgress() {
    const total = model.get("total");
    const position = model.get("position");
    fill.style.width = `${total ? (100 * position) / total : 0}%`;
    progressText.textContent = model.get("progress");
    const playing = model.get("playing");
    playButton.textContent = playing ? "Pause \u25a0" : "Play \u25b6";
    playButton.disabled = !playing && position >= total;
    stepButton.disabled = model.get("exhausted");
    root.classList.toggle("tl-p-playing", playing);
    if (!playing) clearTimeout(timer);
  }

  function showRows() {
    tbody.replaceChildren();
    for (const row of model.get("rows")) {
      const tr = node("tr", `tl-p-row tl-p-${row.state}`);
      tr.append(
        node("td", "tl-p-mark", MARKS[row.state] || ""),
        node("td", "tl-p-num", String(row.index)),
        node("td", "tl-p-label", row.label),
        node("td", null, row.recorded),
        node("td", "tl-p-outcome", row.outcome),
      );
      tbody.appendChild(tr);
    }
    if (model.get("position") >= model.get("total")) {
      const tr = node("tr", "tl-p-row tl-p-end");
      const cell = node("td", null, "end of stream: a further step answers 503 \u201cno more traffic to replay\u201d");
      cell.colSpan = 3;
      tr.append(node("td", "tl-p-mark", "\u25b6"), node("td"), cell);
      tbody.appendChild(tr);
    }
  }

  // The tab the reader chose (a click on a tab label) is kept when the pane shows the next
  // exchange; until then each pane opens on its own default (Replay once played).
  let chosenTab = null;
  detail.addEventListener("change", (event) => {
    const input = event.target;
    if (input.classList && input.classList.contains("tl-d-tab")) {
      chosenTab = [...input.classList].find((c) => c.startsWith("tl-d-tab-"));
    }
  });

  function showDetail() {
    detail.innerHTML = model.get("detail");
    const again = chosenTab ? detail.querySelector(`input.${chosenTab}`) : null;
    if (again) again.checked = true;
  }

  function showError() {
    error.textContent = model.get("error");
    error.style.display = model.get("error") ? "" : "none";
  }

  showHeader();
  showProgress();
  showRows();
  showDetail();
  showError();
  model.on("change:header", showHeader);
  model.on("change:target", showHeader);
  model.on("change:speed", showHeader);
  model.on("change:total", showHeader);
  for (const name of ["position", "total", "progress", "playing", "exhausted"]) {
    model.on(`change:${name}`, showProgress);
  }
  model.on("change:rows", showRows);
  model.on("change:detail", showDetail);
  model.on("change:error", showError);
  return () => clearTimeout(timer);
}

export default { render };
