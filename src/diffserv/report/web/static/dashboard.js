/* diffserv report charts: the one renderer of Report JSON, used by the HTML report
   (data embedded) and by `diffserv serve` (data fetched from /api/report/NAME). */
(function () {
  "use strict";
  const fmt = (n) => (n === null || n === undefined ? "—" : typeof n === "number" ? n.toLocaleString("en-US") : Array.isArray(n) ? n.join(", ") : String(n));
  const keyLabel = (row, prefix) => {
    const p = prefix || "";
    if (row[p + "name"] !== undefined) return row[p + "name"] || "unknown";
    return row[p + "group"] || "unknown";
  };
  const el = (tag, attrs, text) => {
    const e = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => e.setAttribute(k, v));
    if (text !== undefined) e.textContent = text;
    return e;
  };

  function section(root, id, title) {
    const box = el("section", { id: "section-" + id });
    box.appendChild(el("h2", {}, title));
    root.appendChild(box);
    return box;
  }

  function table(box, id, columns, rows, onRow) {
    const t = el("table", { id: "table-" + id });
    const head = el("tr");
    columns.forEach((c) => head.appendChild(el("th", {}, c)));
    t.appendChild(head);
    rows.forEach((row) => {
      const tr = el("tr", onRow ? { class: "clickable" } : {});
      columns.forEach((c) => tr.appendChild(el("td", typeof row[c] === "number" ? {} : { class: "text" }, fmt(row[c]))));
      if (onRow) tr.addEventListener("click", () => onRow(row));
      t.appendChild(tr);
    });
    if (!rows.length) t.appendChild(el("tr")).appendChild(el("td", { colspan: columns.length, class: "text" }, "no records"));
    box.appendChild(t);
    return t;
  }

  function chart(box, id) {
    const div = el("div", { id: "chart-" + id, class: "chart" });
    box.appendChild(div);
    return div;
  }

  function markValue(row) { return row.dscp !== undefined ? { key: "dscp", value: row.dscp } : { key: "group", value: row.group }; }

  function dscpShare(root, report, on) {
    const by = report.meta.by;
    const rows = report.rows.filter((r) => r.side === (report.meta.side || "in"));
    const box = section(root, "dscp", "Traffic per " + report.meta.key + " (" + by + ")");
    const div = chart(box, "dscp");
    Plotly.newPlot(div, [{ type: "pie", hole: 0.45, sort: false, labels: rows.map((r) => keyLabel(r)), values: rows.map((r) => r[by]), customdata: rows.map((r) => r.dscp !== undefined ? r.dscp : r.group) }],
      { title: "Share of " + by, margin: { t: 40, b: 10 } }, { displaylogo: false, responsive: true });
    if (on.mark) div.on("plotly_click", (ev) => on.mark(markValue(rows[ev.points[0].pointNumber])));
    table(box, "dscp", report.meta.key === "group" ? ["group", "dscps", "bytes", "packets", "flows", "share", "avg_bps", "peak_bps"] : ["dscp", "name", "service_class", "group", "bytes", "packets", "flows", "share", "avg_bps", "peak_bps"], rows, on.mark ? (r) => on.mark(markValue(r)) : null);
  }

  function timeline(root, report) {
    const by = report.meta.by === "flows" ? "flows" : report.meta.by;
    const box = section(root, "timeline", "Traffic over time (" + report.meta.interval_s + " s steps)");
    const series = new Map();
    report.rows.forEach((r) => {
      const k = keyLabel(r);
      if (!series.has(k)) series.set(k, { x: [], y: [] });
      series.get(k).x.push(r.start); series.get(k).y.push(r[by]);
    });
    const traces = [...series.entries()].map(([name, s]) => ({ type: "scatter", mode: "lines", stackgroup: "one", name, x: s.x, y: s.y }));
    Plotly.newPlot(chart(box, "timeline"), traces, { title: by + " per interval", margin: { t: 40 } }, { displaylogo: false, responsive: true });
  }

  function apps(root, report, on) {
    const by = report.meta.by;
    const share = "share_of_" + report.meta.key;
    const box = section(root, "apps", "Top applications per " + report.meta.key);
    const label = (r) => (r.service || r.protocol_name) + (r.port !== null ? "/" + r.port : "");
    const marks = [...new Set(report.rows.map((r) => keyLabel(r)))];
    const traces = marks.map((m) => {
      const rows = report.rows.filter((r) => keyLabel(r) === m);
      return { type: "bar", orientation: "h", name: m, y: rows.map(label), x: rows.map((r) => r[by]) };
    });
    Plotly.newPlot(chart(box, "apps"), traces, { barmode: "stack", title: by + " per application", margin: { t: 40, l: 120 } }, { displaylogo: false, responsive: true });
    table(box, "apps", [report.meta.key, "protocol_name", "port", "service", "bytes", "packets", "flows", share, "share_of_total"], report.rows, on.app || null);
  }

  function conversations(root, report, on) {
    const box = section(root, "conversations", "Top conversations per " + report.meta.key);
    table(box, "conversations", [report.meta.key, "addr_a", "addr_b", "bytes", "packets", "flows", "share_of_" + report.meta.key, "share_of_total"], report.rows, on.conversation || null);
  }

  function flows(root, report) {
    const box = section(root, "flows", "Flows");
    table(box, "flows", ["first_seen", "saddr", "sport", "daddr", "dport", "protocol_name", "name", "dscp_out", "ecn_name", "packets", "bytes", "exporter"], report.rows, null);
  }

  function ecn(root, report) {
    const box = section(root, "ecn", "ECN per " + report.meta.key);
    table(box, "ecn", [report.meta.key, "ecn_name", "bytes", "packets", "flows", "share_of_" + report.meta.key, "share_of_total"], report.rows, null);
  }

  function remark(root, report) {
    const box = section(root, "remark", "Re-marking (ingress → egress)");
    const k = report.meta.key;
    const cols = k === "group" ? ["in_group", "out_group"] : ["in_name", "out_name"];
    table(box, "remark", [...cols, "changed", "bytes", "packets", "flows", "share"], report.rows, null);
    box.appendChild(el("h3", {}, "Flows whose mark changed"));
    table(box, "changed-flows", ["saddr", "sport", "daddr", "dport", "protocol", "marks", "bytes", "packets"], report.changed_flows || [], null);
  }

  function tos(root, report) {
    const box = section(root, "tos", "The ToS byte");
    table(box, "tos", ["tos_hex", "precedence_name", "tos_bits", "name", "ecn_name", "bytes", "packets", "flows", "share"], report.rows, null);
  }

  function silent(root, report) {
    const box = section(root, "silent-exporters", "Exporters that never send a ToS");
    table(box, "silent-exporters", ["level", "source", "exporter", "domain", "interfaces", "flows", "bytes", "status", "first_seen", "last_seen"], report.rows, null);
  }

  const VIEWS = { "top-dscp": dscpShare, groups: dscpShare, timeline, apps, conversations, flows, ecn, remark, tos, "silent-exporters": silent };

  /* Draw every report of `reports` ({name: Report JSON}) into `root`, in `order`. */
  function renderAll(root, reports, order, handlers) {
    root.replaceChildren();
    const first = reports[order.find((n) => reports[n])];
    if (first) {
      const m = first.meta, t = m.totals;
      root.appendChild(el("p", { class: "meta", id: "totals" }, `${fmt(t.flows)} flows, ${fmt(t.packets)} packets, ${fmt(t.bytes)} bytes; ${m.first_seen || "—"} to ${m.last_seen || "—"}; filters: ${m.filters.join(" ") || "none"}`));
    }
    order.forEach((name) => { if (reports[name]) VIEWS[name](root, reports[name], handlers || {}); });
  }

  /* The marking audit (`diffserv audit --html`): verdicts per class, then its tables. */
  const VERDICTS = ["conforming", "mismarked", "leak", "not-evaluable", "no-mark"];
  function renderAudit(root, audit) {
    root.replaceChildren();
    const m = audit.meta, v = audit.verdicts;
    root.appendChild(el("p", { class: "meta", id: "verdict" }, (m.passed ? "PASS" : "FAIL") + ": " +
      VERDICTS.map((name) => `${fmt(v[name].flows)} ${name}`).join(", ") + ` (policy ${m.policy}; judged on the ToS ${fmt(m.judged_on.tos)}, on the egress ToS ${fmt(m.judged_on.egress_tos)})`));
    const box = section(root, "classes", "Verdicts per class (bytes)");
    const div = chart(box, "classes");
    const classes = audit.classes;
    Plotly.newPlot(div, VERDICTS.map((name) => ({ type: "bar", name, x: classes.map((c) => c.class), y: classes.map((c) => c[name].bytes) })),
      { barmode: "stack", margin: { t: 20 } }, { displaylogo: false, responsive: true });
    table(box, "classes", ["class", "expected", ...VERDICTS], classes.map((c) => Object.fromEntries([["class", c.class], ["expected", c.expected], ...VERDICTS.map((n) => [n, c[n].flows])])));
    const flowColumns = ["saddr", "sport", "daddr", "dport", "protocol_name", "class", "filter", "expected", "observed", "mark_from", "expected_pcp", "pcp", "packets", "bytes"];
    table(section(root, "confusion", "Expected → observed (mismarked)"), "confusion", ["class", "expected", "observed", "flows", "packets", "bytes"], audit.confusion);
    table(section(root, "mismarked", "Largest mismarked flows"), "mismarked", flowColumns, audit.mismarked);
    table(section(root, "leaks", "Unclassified traffic with a priority mark"), "leaks", flowColumns, audit.leaks);
    table(section(root, "not-evaluable", "Not evaluable (a filter needs what the source lacks)"), "not-evaluable", ["filter", "class", "missing", "flows", "packets", "bytes"], audit.not_evaluable);
    table(section(root, "ecn", "ECN bleached (ECT in, Not-ECT out)"), "ecn", ["saddr", "daddr", "class", "ecn_in", "ecn_out", "packets", "bytes"], audit.ecn_bleached);
  }

  /* `diffserv audit --compare --html`: what a hop did to each flow's marks. */
  function renderCompare(root, result) {
    root.replaceChildren();
    const m = result.meta, t = result.totals;
    root.appendChild(el("p", { class: "meta", id: "verdict" }, (m.policy ? (m.passed ? "PASS" : "FAIL") : "compared") +
      `: ${fmt(t.matched)} packets matched, ${fmt(t.dscp_changed)} re-marked, ${fmt(t.only_before)} seen only before, ${fmt(t.only_after)} only after`));
    const rows = result.flows.filter((f) => f.changed || f.only_before.packets || f.only_after).map((f) => ({
      flow: `${f.saddr}:${f.sport} > ${f.daddr}:${f.dport} (${f.protocol})`, classes: f.classes,
      changes: f.transitions.map((x) => `${x.before}→${x.after} ×${x.packets}` + (x.prescribed === false ? " NOT PRESCRIBED" : "")).join("; "),
      only_before: f.only_before.packets, only_after: f.only_after }));
    table(section(root, "changed", "Flows the hop changed"), "changed", ["flow", "classes", "changes", "only_before", "only_after"], rows);
  }

  window.DiffservCharts = { renderAll, renderAudit, renderCompare, VIEWS, fmt };
})();
