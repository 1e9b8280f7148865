// traffic_lab TrafficBrowser front end (anywidget ES module; no build step, no CDN).
// The kernel holds the capture; this page shows a virtual list: a spacer as tall as the whole
// selection, and only the rows in view (plus a margin), asked for with a "window" message.
// Text from the capture arrives as data and is set with textContent; only detail_html (HTML the
// kernel built with every capture text escaped) is set as markup.

const ROW = 22; // px, fixed row height
const MARGIN = 40; // rows asked for above and below the view
const MAX_PX = 8000000; // taller spacers are scaled (browsers cap element heights)
const DEFAULT_WIDTHS = {
  time: 104, method: 52, host: 110, url: 200, status: 48, type: 90, size: 56, duration: 72,
};
// where each column's value is in a window row (see TrafficView.list_rows)
const CELL = { time: 1, method: 2, host: 3, url: 4, status: 5, type: 7, size: 8, duration: 9 };
const FACETS = [
  ["method", "Method", "methods"],
  ["status", "Status", "status"],
  ["host", "Host", "hosts"],
  ["type", "Type", "content_types"],
];

function node(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function formatSize(n) {
  if (typeof n !== "number") return String(n);
  if (n < 1024) return `${n} B`;
  if (n < 1048576) return `${(n / 1024).toFixed(1)} kB`;
  return `${(n / 1048576).toFixed(1)} MB`;
}

function shown(key, value) {
  if (key === "size") return formatSize(value);
  if (key === "duration") return `${value} ms`;
  return String(value);
}

function render({ model, el }) {
  const root = node("div", "tl-browser");
  el.appendChild(root);
  const widths = { ...DEFAULT_WIDTHS };
  let requested = [-1, -1, -1]; // start, count, generation of the last window request
  let drawn = "";
  let drawnWindow = null; // what the drawn rows show (see drawRows)

  // header line, messages
  const count = node("div", "tl-count");
  const progress = node("div", "tl-progress");
  const error = node("div", "tl-error");

  // filter bar
  const filters = node("div", "tl-filters");
  const facetBoxes = {};
  for (const [key, label] of FACETS) {
    const box = node("div", "tl-facet");
    box.dataset.facet = key;
    box.appendChild(node("span", "tl-facet-name", label));
    facetBoxes[key] = box;
    filters.appendChild(box);
  }
  const search = node("input", "tl-search");
  search.type = "search";
  search.placeholder = "search URL, or /path/glob*";
  const bodies = node("label", "tl-bodies");
  const bodiesBox = node("input");
  bodiesBox.type = "checkbox";
  bodiesBox.className = "tl-search-bodies";
  bodies.append(bodiesBox, " bodies");
  const reset = node("button", "tl-button tl-reset", "Reset filters");
  const searchBox = node("div", "tl-facet");
  searchBox.append(search, bodies, reset);
  filters.appendChild(searchBox);

  // time brush
  const brush = node("div", "tl-brush");
  brush.title = "drag to keep a time range; click to clear";

  // list | detail
  const split = node("div", "tl-split");
  const listPane = node("div", "tl-list-pane");
  const head = node("div", "tl-head");
  const scroll = node("div", "tl-scroll");
  scroll.tabIndex = 0;
  const spacer = node("div", "tl-spacer");
  const rowsBox = node("div", "tl-rows");
  scroll.append(spacer, rowsBox);
  listPane.append(head, scroll);
  const gutter = node("div", "tl-gutter");
  const detailPane = node("div", "tl-detail-pane");
  const detailHead = node("div", "tl-detail-head");
  const baseUrl = node("input", "tl-base-url");
  baseUrl.placeholder = "replay to (base URL; empty: the recorded host)";
  const replay = node("button", "tl-button tl-replay", "Replay");
  const closeDetail = node("button", "tl-button tl-close-detail", "\u00d7");
  closeDetail.title = "close the detail (Enter opens it)";
  detailHead.append(baseUrl, replay, closeDetail);
  const detail = node("div", "tl-detail-body");
  detailPane.append(detailHead, detail);
  split.append(listPane, gutter, detailPane);
  root.append(count, error, progress, filters, brush, split);

  const send = (msg) => model.send(msg);
  const setTrait = (name, value) => {
    model.set(name, value);
    model.save_changes();
  };
  const visibleColumns = () => {
    const hidden = new Set(model.get("hidden_columns"));
    return model.get("columns").map((c) => c[0]).filter((k) => !hidden.has(k));
  };

  // -- the list ---------------------------------------------------------------------------
  function geometry() {
    const matches = model.get("matches");
    const full = matches * ROW;
    const height = Math.min(full, MAX_PX);
    const view = Math.max(1, Math.ceil(scroll.clientHeight / ROW) || 20);
    let first;
    if (full <= MAX_PX) {
      first = Math.floor(scroll.scrollTop / ROW);
    } else {
      const room = Math.max(1, height - scroll.clientHeight);
      first = Math.round((scroll.scrollTop / room) * Math.max(0, matches - view));
    }
    first = Math.max(0, Math.min(first, Math.max(0, matches - 1)));
    return { matches, height, view, first, scaled: full > MAX_PX };
  }

  function ensureWindow() {
    const g = geometry();
    const win = model.get("window") || {};
    const generation = model.get("generation");
    const rows = win.rows || [];
    const start = win.start || 0;
    const need = Math.min(g.view, g.matches - g.first);
    const covered =
      win.generation === generation && start <= g.first && start + rows.length >= g.first + need;
    if (!covered) {
      const wantStart = Math.max(0, g.first - MARGIN);
      const wantCount = g.view + 2 * MARGIN;
      if (requested[0] !== wantStart || requested[1] !== wantCount || requested[2] !== generation) {
        requested = [wantStart, wantCount, generation];
        send({ type: "window", start: wantStart, count: wantCount });
      }
    }
    drawRows();
  }

  function drawHead() {
    head.replaceChildren();
    const sort = model.get("sort");
    const labels = Object.fromEntries(model.get("columns"));
    for (const key of visibleColumns()) {
      const cell = node("div", "tl-header-cell", labels[key]);
      cell.dataset.col = key;
      cell.style.width = `${widths[key]}px`;
      if (sort === key) cell.classList.add("tl-sorted-asc");
      if (sort === `-${key}`) cell.classList.add("tl-sorted-desc");
      cell.title = "click to sort; drag the edge to resize";
      const grip = node("div", "tl-resize");
      grip.addEventListener("mousedown", (event) => startResize(event, key));
      grip.addEventListener("click", (event) => event.stopPropagation());
      cell.appendChild(grip);
      cell.addEventListener("click", () => {
        const next = sort === key ? `-${key}` : key;
        setTrait("sort", next);
      });
      head.appendChild(cell);
    }
    const wf = node("div", "tl-header-cell tl-waterfall", "Waterfall");
    wf.dataset.col = "waterfall";
    wf.title = "start and duration on the selection's time axis (click: sort by time)";
    wf.addEventListener("click", () => setTrait("sort", sort === "time" ? "-time" : "time"));
    head.appendChild(wf);
    const menuButton = node("div", "tl-menu-button", "\u22ee");
    menuButton.title = "columns";
    menuButton.addEventListener("click", (event) => {
      event.stopPropagation();
      toggleMenu();
    });
    head.appendChild(menuButton);
  }

  let menu = null;
  function toggleMenu() {
    if (menu) {
      menu.remove();
      menu = null;
      return;
    }
    menu = node("div", "tl-column-menu");
    const hidden = new Set(model.get("hidden_columns"));
    for (const [key, label] of model.get("columns")) {
      const line = node("label");
      const box = node("input");
      box.type = "checkbox";
      box.checked = !hidden.has(key);
      box.dataset.col = key;
      box.addEventListener("change", () => {
        const now = new Set(model.get("hidden_columns"));
        if (box.checked) now.delete(key);
        else now.add(key);
        setTrait("hidden_columns", [...now]);
      });
      line.append(box, ` ${label}`);
      menu.appendChild(line);
    }
    listPane.style.position = "relative";
    listPane.appendChild(menu);
  }

  function startResize(event, key) {
    event.preventDefault();
    event.stopPropagation();
    const x0 = event.clientX;
    const w0 = widths[key];
    const move = (e) => {
      widths[key] = Math.max(30, w0 + e.clientX - x0);
      drawHead();
      drawRows();
    };
    const up = () => {
      window.removeEventListener("mousemove", move);
      window.removeEventListener("mouseup", up);
    };
    window.addEventListener("mousemove", move);
    window.addEventListener("mouseup", up);
  }

  function drawRows() {
    const g = geometry();
    spacer.style.height = `${g.height}px`;
    const win = model.get("window") || {};
    const rows = win.generation === model.get("generation") ? win.rows || [] : [];
    const start = win.start || 0;
    const selected = new Set(model.get("selected_positions"));
    const cursor = model.get("cursor");
    const columns = visibleColumns();
    const offset = g.scaled ? 0 : scroll.scrollTop % ROW;
    const firstShown = Math.max(start, g.first - MARGIN);
    let top = scroll.scrollTop - offset - (g.first - firstShown) * ROW;
    if (g.scaled) {
      // the rows in view end at the spacer's end, never past it: a row drawn below the
      // spacer would grow the scroll area, and scrolling to it would move the rows again
      const over = scroll.scrollTop + (Math.min(g.matches, g.first + g.view) - g.first) * ROW - g.height;
      if (over > 0) top -= over;
    }
    const fits = Math.max(0, Math.floor((g.height - top) / ROW));
    const lastShown = Math.min(start + rows.length, g.first + g.view + MARGIN, firstShown + fits);
    rowsBox.style.top = `${top}px`;
    // rebuild the rows only when what they show changed: scrolling within the window moves
    // them, and a row under the pointer stays the same element
    const key = [win.generation, start, rows.length, firstShown, lastShown, cursor,
      model.get("selected_positions").join(","), columns.join(","),
      columns.map((k) => widths[k]).join(","), g.matches].join("|");
    if (key === drawn && win === drawnWindow) return;
    drawn = key;
    drawnWindow = win;
    const out = [];
    for (let index = firstShown; index < lastShown; index++) {
      const row = rows[index - start];
      const line = node("div", `tl-row tl-row-${row[6].slice(3)}`);
      line.dataset.index = index;
      line.dataset.position = row[0];
      if (selected.has(row[0])) line.classList.add("tl-row-selected");
      if (index === cursor) line.classList.add("tl-row-cursor");
      for (const key of columns) {
        const value = row[CELL[key]];
        const cell = node("div", `tl-cell tl-col-${key}`, shown(key, value));
        if (key === "status") cell.classList.add(row[6]);
        if (key === "url") cell.title = String(value);
        cell.style.width = `${widths[key]}px`;
        line.appendChild(cell);
      }
      const wf = node("div", "tl-cell tl-waterfall");
      const bar = node("div", `tl-bar ${row[6]}`);
      bar.style.marginLeft = `${(row[10] * 100).toFixed(2)}%`;
      bar.style.width = `max(2px, ${(row[11] * 100).toFixed(2)}%)`;
      bar.title = `${row[9]} ms`;
      wf.appendChild(bar);
      line.append(wf, node("div", "tl-row-end")); // under the header's column menu button
      out.push(line);
    }
    if (!g.matches) out.push(node("div", "tl-note", "no exchanges match: loosen the filters"));
    rowsBox.replaceChildren(...out);
  }

  function scrollToCursor() {
    const cursor = model.get("cursor");
    if (cursor < 0) return;
    const g = geometry();
    if (g.scaled) {
      if (cursor < g.first || cursor >= g.first + g.view - 1) {
        const room = Math.max(1, g.height - scroll.clientHeight);
        scroll.scrollTop = (cursor / Math.max(1, g.matches - g.view)) * room;
      }
      return;
    }
    const top = cursor * ROW;
    if (top < scroll.scrollTop) scroll.scrollTop = top;
    else if (top + ROW > scroll.scrollTop + scroll.clientHeight)
      scroll.scrollTop = top + ROW - scroll.clientHeight;
  }

  rowsBox.addEventListener("click", (event) => {
    const line = event.target.closest(".tl-row");
    if (!line) return;
    if (event.shiftKey) event.preventDefault();
    send({
      type: "click",
      index: Number(line.dataset.index),
      shift: event.shiftKey,
      toggle: event.ctrlKey || event.metaKey,
    });
    scroll.focus({ preventScroll: true });
  });
  rowsBox.addEventListener("mousedown", (event) => {
    if (event.shiftKey) event.preventDefault(); // no text selection on shift-click
  });
  let moving = false;
  scroll.addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      moving = true;
      send({ type: "move", step: event.key === "ArrowDown" ? 1 : -1 });
    } else if (event.key === "Enter") {
      event.preventDefault();
      send({ type: "open" });
    }
  });
  scroll.addEventListener("scroll", () => {
    head.scrollLeft = scroll.scrollLeft; // the header scrolls sideways with the rows
    window.requestAnimationFrame(ensureWindow);
  });

  // -- filter bar -------------------------------------------------------------------------
  function chosen(key) {
    const trait = FACETS.find((f) => f[0] === key)[2];
    const value = model.get(trait);
    return key === "status" ? value.split(",").map((s) => s.trim()).filter(Boolean) : value;
  }

  function toggleChip(key, value) {
    const trait = FACETS.find((f) => f[0] === key)[2];
    const now = chosen(key);
    const next = now.includes(value) ? now.filter((v) => v !== value) : [...now, value];
    setTrait(trait, key === "status" ? next.join(",") : next);
  }

  function drawFacets() {
    const facets = model.get("facets");
    for (const [key] of FACETS) {
      const box = facetBoxes[key];
      box.replaceChildren(box.firstChild);
      const on = new Set(chosen(key));
      for (const [value, n] of facets[key] || []) {
        const chip = node("button", "tl-chip", value);
        chip.dataset.value = value;
        chip.dataset.facet = key;
        chip.appendChild(node("span", "tl-chip-count", n.toLocaleString("en-US")));
        if (on.has(value)) chip.classList.add("tl-chip-on");
        chip.addEventListener("click", () => toggleChip(key, value));
        box.appendChild(chip);
      }
    }
  }

  let typing = null;
  search.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => setTrait("search", search.value), 250);
  });
  search.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      clearTimeout(typing);
      setTrait("search", search.value);
    }
  });
  bodiesBox.addEventListener("change", () => setTrait("search_bodies", bodiesBox.checked));
  reset.addEventListener("click", () => send({ type: "reset" }));

  // -- time brush -------------------------------------------------------------------------
  function drawBrush() {
    brush.replaceChildren();
    const { low, high, counts } = model.get("histogram");
    if (!counts || !counts.length) return;
    const peak = Math.max(1, ...counts);
    counts.forEach((c, i) => {
      const bar = node("div", "tl-brush-bar");
      bar.style.left = `${(i / counts.length) * 100}%`;
      bar.style.width = `${100 / counts.length}%`;
      bar.style.height = `${(c / peak) * 100}%`;
      brush.appendChild(bar);
    });
    const range = model.get("time_range");
    const span = Math.max(1, high - low);
    if (range.length === 2) {
      const box = node("div", "tl-brush-range");
      box.style.left = `${((range[0] - low) / span) * 100}%`;
      box.style.width = `${((range[1] - range[0]) / span) * 100}%`;
      brush.appendChild(box);
    }
    const fmt = (us) => new Date(us / 1000).toISOString().slice(11, 19);
    const left = node("div", "tl-brush-label", fmt(range.length === 2 ? range[0] : low));
    const right = node("div", "tl-brush-label", fmt(range.length === 2 ? range[1] : high));
    right.style.right = "0";
    brush.append(left, right);
  }

  brush.addEventListener("mousedown", (event) => {
    const rect = brush.getBoundingClientRect();
    const x0 = event.clientX;
    const frac = (x) => Math.min(1, Math.max(0, (x - rect.left) / rect.width));
    const box = node("div", "tl-brush-range");
    brush.appendChild(box);
    const move = (e) => {
      const a = frac(Math.min(x0, e.clientX));
      const b = frac(Math.max(x0, e.clientX));
      box.style.left = `${a * 100}%`;
      box.style.width = `${(b - a) * 100}%`;
    };
    const up = (e) => {
      window.removeEventListener("mousemove", move);
      window.removeEventListener("mouseup", up);
      const { low, high } = model.get("histogram");
      if (Math.abs(e.clientX - x0) < 3) {
        setTrait("time_range", []);
      } else {
        const a = frac(Math.min(x0, e.clientX));
        const b = frac(Math.max(x0, e.clientX));
        setTrait("time_range", [
          Math.floor(low + a * (high - low)),
          Math.ceil(low + b * (high - low)),
        ]);
      }
      drawBrush();
    };
    window.addEventListener("mousemove", move);
    window.addEventListener("mouseup", up);
  });

  // -- split and detail -------------------------------------------------------------------
  gutter.addEventListener("mousedown", (event) => {
    event.preventDefault();
    const x0 = event.clientX;
    const w0 = listPane.getBoundingClientRect().width;
    const move = (e) => {
      listPane.style.flex = `0 0 ${Math.max(200, w0 + e.clientX - x0)}px`;
    };
    const up = () => {
      window.removeEventListener("mousemove", move);
      window.removeEventListener("mouseup", up);
    };
    window.addEventListener("mousemove", move);
    window.addEventListener("mouseup", up);
  });
  baseUrl.addEventListener("change", () => setTrait("base_url", baseUrl.value));
  replay.addEventListener("click", () => {
    setTrait("base_url", baseUrl.value);
    send({ type: "replay" });
  });
  closeDetail.addEventListener("click", () => setTrait("detail_open", false));

  function drawDetail() {
    const html = model.get("detail_html");
    detail.innerHTML = html || "<div class='tl-note'>click a row to see its exchange</div>";
    root.classList.toggle("tl-detail-closed", !model.get("detail_open"));
  }

  function drawText() {
    count.textContent = model.get("header");
    progress.textContent = model.get("progress");
    error.textContent = model.get("error");
    if (document.activeElement !== search) search.value = model.get("search");
    bodiesBox.checked = model.get("search_bodies");
    if (document.activeElement !== baseUrl) baseUrl.value = model.get("base_url");
  }

  const handlers = [
    ["change:window", drawRows],
    ["change:generation", () => { scroll.scrollTop = 0; ensureWindow(); }], // a new list: its top
    ["change:matches", ensureWindow],
    ["change:selected_positions", drawRows],
    ["change:cursor", () => {
      if (moving) scrollToCursor(); // keys move the cursor out of view; clicks never do
      moving = false;
      drawRows();
    }],
    ["change:sort", drawHead],
    ["change:hidden_columns", () => { drawHead(); drawRows(); }],
    ["change:methods change:status change:hosts change:content_types", drawFacets],
    ["change:facets", drawFacets],
    ["change:histogram change:time_range", drawBrush],
    ["change:detail_html change:detail_open", drawDetail],
    ["change:header change:progress change:error change:search change:search_bodies change:base_url", drawText],
  ];
  for (const [event, handler] of handlers) model.on(event, handler);
  drawText();
  drawFacets();
  drawBrush();
  drawHead();
  drawDetail();
  // the scroll box has its size once it is in the page
  requestAnimationFrame(ensureWindow);
  return () => {
    for (const [event, handler] of handlers) model.off(event, handler);
  };
}

export default { render };
