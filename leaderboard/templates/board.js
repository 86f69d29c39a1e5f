/* cvit-bench leaderboard: sorting and filtering of tables, and the prediction drill-down.
   Data reaches the page as HTML escaped at build time or as JSON blocks; this script only
   ever writes text (textContent), never markup. */
(function () {
  "use strict";

  function cellValue(row, index, numeric) {
    var cell = row.cells[index];
    if (!cell) return null;
    var raw = cell.hasAttribute("data-v") ? cell.getAttribute("data-v") : cell.textContent.trim();
    if (raw === "") return null;
    if (numeric) {
      var n = parseFloat(raw);
      return isNaN(n) ? null : n;
    }
    return raw.toLowerCase();
  }

  function makeSortable(table) {
    var headers = table.tHead ? table.tHead.rows[0].cells : [];
    var body = table.tBodies[0];
    Array.prototype.forEach.call(body.rows, function (row, i) { row.setAttribute("data-order", i); });
    Array.prototype.forEach.call(headers, function (th, index) {
      if (th.getAttribute("data-sort") === "none") return;
      var button = document.createElement("button");
      button.type = "button";
      while (th.firstChild) button.appendChild(th.firstChild);
      th.appendChild(button);
      button.addEventListener("click", function () {
        var numeric = th.getAttribute("data-type") === "num";
        var current = th.getAttribute("aria-sort");
        var dir;
        if (current === "descending") dir = "ascending";
        else if (current === "ascending") dir = "descending";
        else dir = numeric ? "descending" : "ascending";
        Array.prototype.forEach.call(headers, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", dir);
        var sign = dir === "ascending" ? 1 : -1;
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var va = cellValue(a, index, numeric), vb = cellValue(b, index, numeric);
          if (va === null && vb === null) return a.getAttribute("data-order") - b.getAttribute("data-order");
          if (va === null) return 1;   /* missing values stay at the bottom either way */
          if (vb === null) return -1;
          if (va < vb) return -sign;
          if (va > vb) return sign;
          return a.getAttribute("data-order") - b.getAttribute("data-order");
        });
        rows.forEach(function (row) { body.appendChild(row); });
      });
    });
  }

  function applyFilters(form, table) {
    var controls = form.querySelectorAll("[data-filter]");
    var wanted = {};
    Array.prototype.forEach.call(controls, function (c) { wanted[c.getAttribute("data-filter")] = c.value; });
    var text = (wanted.text || "").trim().toLowerCase();
    var shown = 0, total = 0;
    Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
      total += 1;
      var ok = true;
      if (wanted.method && row.getAttribute("data-method") !== wanted.method) ok = false;
      if (wanted.model && row.getAttribute("data-model") !== wanted.model) ok = false;
      if (wanted.status && row.getAttribute("data-status") !== wanted.status) ok = false;
      if (wanted.tag) {
        var tags = JSON.parse(row.getAttribute("data-tags") || "[]");
        if (tags.indexOf(wanted.tag) < 0) ok = false;
      }
      if (text && row.textContent.toLowerCase().indexOf(text) < 0) ok = false;
      row.hidden = !ok;
      if (ok) shown += 1;
    });
    var count = form.querySelector(".count");
    if (count) count.textContent = shown + " of " + total + " shown";
  }

  function makeFilterable(form) {
    var table = document.getElementById(form.getAttribute("data-table"));
    if (!table) return;
    var update = function () { applyFilters(form, table); };
    form.addEventListener("input", update);
    form.addEventListener("change", update);
    form.addEventListener("submit", function (e) { e.preventDefault(); });
    update();
  }

  /* -- drill-down: per-sample predictions of one task, one stage at a time -- */
  var PAGE = 50;

  function drill(data) {
    var stageSelect = document.getElementById("drill-stage");
    var search = document.getElementById("drill-search");
    var show = document.getElementById("drill-show");
    var tbody = document.querySelector("#drill-table tbody");
    var info = document.getElementById("drill-info");
    var prev = document.getElementById("drill-prev");
    var next = document.getElementById("drill-next");
    var note = document.getElementById("drill-note");
    var page = 0;

    data.stages.forEach(function (s) {
      var option = document.createElement("option");
      option.value = String(s.stage);
      option.textContent = s.label + (s.value === null ? "" : "  (" + s.value.toFixed(2) + ")");
      stageSelect.appendChild(option);
    });
    var fromHash = /stage=(\d+)/.exec(window.location.hash);
    var initial = data.stages.length ? data.stages[data.stages.length - 1].stage : 0;
    if (fromHash && data.stages.some(function (s) { return String(s.stage) === fromHash[1]; })) {
      initial = parseInt(fromHash[1], 10);
    }
    stageSelect.value = String(initial);

    function currentStage() {
      var key = stageSelect.value;
      return data.stages.filter(function (s) { return String(s.stage) === key; })[0];
    }

    function matching() {
      var stage = currentStage();
      var preds = data.preds[String(stage.stage)] || { p: [], s: [] };
      var text = search.value.trim().toLowerCase();
      var mode = show.value;
      var out = [];
      for (var i = 0; i < data.samples.length; i++) {
        var sample = data.samples[i];
        var prediction = preds.p[i], score = preds.s[i];
        if (mode === "wrong" && !(score !== null && score !== undefined && score < 100)) continue;
        if (mode === "right" && !(score !== null && score !== undefined && score >= 100)) continue;
        if (text) {
          var hay = (sample[0] + "\n" + sample[1] + "\n" + sample[2] + "\n" + (prediction || "")).toLowerCase();
          if (hay.indexOf(text) < 0) continue;
        }
        out.push(i);
      }
      return out;
    }

    function td(text, cls) {
      var cell = document.createElement("td");
      if (cls) cell.className = cls;
      cell.textContent = text;
      return cell;
    }

    function render() {
      var stage = currentStage();
      if (!stage) return;
      var preds = data.preds[String(stage.stage)] || { p: [], s: [] };
      var rows = matching();
      var pages = Math.max(1, Math.ceil(rows.length / PAGE));
      if (page >= pages) page = pages - 1;
      while (tbody.firstChild) tbody.removeChild(tbody.firstChild);
      rows.slice(page * PAGE, page * PAGE + PAGE).forEach(function (i) {
        var sample = data.samples[i];
        var score = preds.s[i];
        var prediction = preds.p[i];
        var tr = document.createElement("tr");
        if (score !== null && score !== undefined) tr.className = score >= 100 ? "right" : "wrong";
        tr.appendChild(td(sample[0], "mono"));
        tr.appendChild(td(sample[1], "text"));
        tr.appendChild(td(prediction === null || prediction === undefined ? "(no prediction)" : prediction, "text prediction"));
        tr.appendChild(td(sample[2] === null ? "" : sample[2], "text reference"));
        tr.appendChild(td(score === null || score === undefined ? "–" : score.toFixed(1), "num score"));
        tbody.appendChild(tr);
      });
      var first = rows.length ? page * PAGE + 1 : 0;
      info.textContent = "samples " + first + "–" + Math.min(rows.length, (page + 1) * PAGE) +
        " of " + rows.length + " matching (" + data.samples.length + " shown of " + stage.total + " scored)";
      prev.disabled = page === 0;
      next.disabled = page >= pages - 1;
      note.hidden = !(stage.total > data.samples.length);
    }

    stageSelect.addEventListener("change", function () {
      page = 0;
      history.replaceState(null, "", "#stage=" + stageSelect.value);
      render();
    });
    search.addEventListener("input", function () { page = 0; render(); });
    show.addEventListener("change", function () { page = 0; render(); });
    prev.addEventListener("click", function () { page = Math.max(0, page - 1); render(); });
    next.addEventListener("click", function () { page += 1; render(); });
    window.addEventListener("hashchange", function () {
      var m = /stage=(\d+)/.exec(window.location.hash);
      if (m && stageSelect.value !== m[1]) { stageSelect.value = m[1]; page = 0; render(); }
    });
    render();
  }

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), makeSortable);
    Array.prototype.forEach.call(document.querySelectorAll("form.filters"), makeFilterable);
    var block = document.getElementById("drill-data");
    if (block) drill(JSON.parse(block.textContent));
    document.documentElement.setAttribute("data-ready", "1");
  });
})();
