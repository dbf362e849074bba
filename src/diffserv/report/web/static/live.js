/* The dashboard of `diffserv serve`: asks the API for reports and draws them with
   DiffservCharts (the same code as the HTML report); drill-down and auto-refresh. */
(function () {
  "use strict";
  const OVERVIEW = ["top-dscp", "timeline", "ecn", "remark", "tos", "silent-exporters"];
  const state = { view: "overview", drill: [], crumbs: [{ label: "overview", view: "overview", drill: [] }] };
  const $ = (id) => document.getElementById(id);

  function params(extra) {
    const q = new URLSearchParams();
    const range = $("range").value;
    if (range === "custom") {
      if ($("from").value) q.set("from", $("from").value);
      if ($("to").value) q.set("to", $("to").value);
    } else if (range !== "all") q.set("from", range);
    ["exporter", "interface", "direction", "protocol", "dscp", "addr"].forEach((k) => {
      const v = $("f-" + k).value.trim();
      if (v) v.split(",").forEach((part) => q.append("filter", k + "=" + part.trim()));
    });
    q.set("key", $("key").value);
    extra.forEach((f) => q.append("filter", f));
    return q;
  }

  async function fetchReport(name, extra) {
    const answer = await fetch("/api/report/" + name + "?" + params(extra).toString());
    const body = await answer.json();
    if (!answer.ok) throw new Error(body.error || answer.statusText);
    return body;
  }

  function go(view, drill, label) {
    state.view = view; state.drill = drill;
    state.crumbs.push({ label, view, drill });
    load();
  }

  const handlers = {
    mark: (m) => go("apps", [m.key + "=" + m.value], m.key + " " + m.value),
    app: (row) => {
      const f = [...state.drill, "protocol=" + row.protocol];
      if (row.port !== null) f.push("port=" + row.port);
      go("conversations", f, (row.service || row.protocol_name) + (row.port !== null ? "/" + row.port : ""));
    },
    conversation: (row) => go("flows", [...state.drill, "src=" + row.addr_a, "src=" + row.addr_b, "dst=" + row.addr_a, "dst=" + row.addr_b], row.addr_a + " ↔ " + row.addr_b),
  };

  function drawCrumbs() {
    const box = $("crumbs");
    box.replaceChildren();
    state.crumbs.forEach((c, i) => {
      if (i) box.append(" › ");
      const a = document.createElement("a");
      a.textContent = c.label;
      a.addEventListener("click", () => { state.crumbs = state.crumbs.slice(0, i + 1); state.view = c.view; state.drill = c.drill; load(); });
      box.append(a);
    });
  }

  let loading = false;
  async function load() {
    if (loading) return;
    loading = true;
    drawCrumbs();
    const names = state.view === "overview" ? OVERVIEW : [state.view];
    try {
      const got = await Promise.all(names.map((n) => fetchReport(n, state.drill)));
      const reports = {};
      names.forEach((n, i) => { reports[n] = got[i]; });
      $("error").textContent = "";
      DiffservCharts.renderAll($("views"), reports, names, handlers);
      document.body.dataset.view = state.view;
    } catch (e) {
      $("error").textContent = String(e.message || e);
    } finally { loading = false; }
  }

  window.addEventListener("DOMContentLoaded", () => {
    $("apply").addEventListener("click", load);
    $("range").addEventListener("change", () => { $("custom").style.display = $("range").value === "custom" ? "" : "none"; });
    const every = Number(document.body.dataset.refresh || 10);
    if (every > 0) setInterval(() => { if (!document.hidden) load(); }, every * 1000);
    load();
  });
  window.DiffservLive = { state, load };
})();
