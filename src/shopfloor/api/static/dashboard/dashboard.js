// shopfloor dashboard: every panel fetches its JSON from /dashboard/api/<panel> and draws it with Chart.js.
// Each panel element gets data-state="loading|ready|empty|error", and once drawn data-points (chart values)
// and data-rows (table rows), which the end-to-end test reads.
"use strict";

(function () {
  const charts = {};
  const COLORS = ["#2563eb", "#16a34a", "#dc2626", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#4b5563"];

  function esc(value) {
    if (value === null || value === undefined) return "";
    return String(value).replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;",
                                                    "'": "&#39;"}[c]));
  }
  function num(value, digits) {
    if (value === null || value === undefined || Number.isNaN(value)) return "-";
    return Number(value).toLocaleString(undefined, {maximumFractionDigits: digits === undefined ? 2 : digits});
  }
  function pct(value) { return value === null || value === undefined ? "-" : num(value * 100, 1) + "%"; }
  function hhmm(iso) { return iso ? iso.substring(11, 16) : ""; }
  function when(iso) { return iso ? iso.substring(0, 19).replace("T", " ") : "-"; }
  // Ages under 6 s are drawn at the floor of the log axis (0 has no place on it).
  const AGE_FLOOR_MIN = 0.1;
  function ageMin(hours) {
    return hours === null || hours === undefined ? null : Math.max(AGE_FLOOR_MIN * 1.5, hours * 60);
  }
  function badge(text) { return `<span class="badge ${esc(text)}">${esc(text)}</span>`; }

  function kpis(items) {
    return items.map(([label, value]) => `<div class="kpi"><b>${esc(value)}</b><span>${esc(label)}</span></div>`)
      .join("");
  }

  // columns: [header, (row) => cell html, className]
  function table(title, columns, rows) {
    const head = columns.map(([h, , cls]) => `<th class="${cls || ""}">${esc(h)}</th>`).join("");
    const body = rows.map((r) => "<tr>" + columns.map(([, f, cls]) => `<td class="${cls || ""}">${f(r)}</td>`)
      .join("") + "</tr>").join("");
    const caption = title ? `<h3>${esc(title)}</h3>` : "";
    if (!rows.length) return `${caption}<p class="muted">none</p>`;
    return `${caption}<table><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>`;
  }

  function draw(name, el, config) {
    if (charts[name]) { charts[name].destroy(); delete charts[name]; }
    const box = el.querySelector(".chart");
    if (!config) { box.classList.add("none"); return 0; }
    box.classList.remove("none");
    config.options = Object.assign({animation: false, responsive: true, maintainAspectRatio: false,
                                    interaction: {mode: "index", intersect: false}}, config.options || {});
    charts[name] = new Chart(box.querySelector("canvas"), config);
    let points = 0;
    for (const ds of config.data.datasets) {
      for (const v of ds.data) if (v !== null && v !== undefined) points += 1;
    }
    return points;
  }

  function line(label, data, color, extra) {
    return Object.assign({label, data, borderColor: color, backgroundColor: color, pointRadius: 0,
                          borderWidth: 2, spanGaps: false, tension: 0.2}, extra || {});
  }

  // ---------------------------------------------------------------------------------------------- renderers
  // Each returns {summary: html, chart: Chart.js config or null, table: html}.

  const RENDER = {
    traffic(d) {
      const labels = d.minutes.concat(d.future_minutes).map(hhmm);
      const pad = (arr, before, after) => new Array(before).fill(null).concat(arr, new Array(after).fill(null));
      const n = d.minutes.length, h = d.future_minutes.length;
      return {
        summary: kpis([["requests/min, last 15 min", num(d.summary.requests_last_15m_per_min)],
                       ["forecast/min, next 60 min", num(d.summary.forecast_next_60m_per_min)],
                       [`upper quantile`, "q" + d.quantile], ["minutes of history", num(d.summary.observed_minutes, 0)]]),
        chart: {type: "line", data: {labels, datasets: [
          // The band between each forecast's mean and its upper quantile is filled, so it shows as a band
          // and not as one more thin line; the observed requests are drawn on top (lowest order).
          line("requests/min", pad(d.requests, 0, h), COLORS[0], {pointRadius: 2, order: -1}),
          line("forecast (1 min ahead)", pad(d.forecast_mean, 0, h), COLORS[1], {borderDash: [4, 3]}),
          line("forecast upper", pad(d.forecast_upper, 0, h), "#86efac",
               {borderWidth: 1, fill: "-1", backgroundColor: "rgba(134, 239, 172, 0.35)"}),
          line("forecast next hour", pad(d.future_mean, n, 0), COLORS[3], {borderDash: [6, 3]}),
          line("upper, next hour", pad(d.future_upper, n, 0), "#d8b4fe",
               {borderWidth: 1, fill: "-1", backgroundColor: "rgba(216, 180, 254, 0.35)"}),
        ]}, options: {scales: {y: {beginAtZero: true, title: {display: true, text: "requests / min"}}}}},
        table: "",
      };
    },

    funnel(d) {
      const steps = d.steps;
      return {
        summary: kpis([["first step", num(steps[0].count, 0)],
                       ["overall conversion", pct(steps[steps.length - 1].from_first)]]),
        chart: {type: "bar", data: {labels: steps.map((s) => s.stage), datasets: [
          {label: "events", data: steps.map((s) => s.count), backgroundColor: COLORS[0]}]},
          options: {indexAxis: "y", plugins: {legend: {display: false}}}},
        table: table(null, [["stage", (s) => esc(s.stage)], ["count", (s) => num(s.count, 0), "num"],
                            ["from previous", (s) => pct(s.from_previous), "num"],
                            ["from first", (s) => pct(s.from_first), "num"]], steps),
      };
    },

    checkout(d) {
      const s = d.summary;
      return {
        // Sold-out refusals (409) are right answers, not failures: shown apart and left out of the rate.
        summary: kpis([["attempts", num(s.attempts, 0)], ["succeeded", num(s.succeeded, 0)],
                       ["refused, sold out", num(s.refused_out_of_stock, 0)], ["failed", num(s.failed, 0)],
                       ["success rate (excl. sold out)", pct(s.success_rate)],
                       ["mean latency", num(s.latency_ms_mean, 1) + " ms"]]),
        chart: {data: {labels: d.minutes.map(hhmm), datasets: [
          {type: "bar", label: "succeeded", data: d.succeeded, backgroundColor: COLORS[1], yAxisID: "y", stack: "c"},
          {type: "bar", label: "refused, sold out", data: d.refused, backgroundColor: "#fcd34d", yAxisID: "y",
           stack: "c"},
          {type: "bar", label: "failed", data: d.attempts.map((a, i) => Math.max(0, a - d.succeeded[i] - d.refused[i])),
           backgroundColor: COLORS[2], yAxisID: "y", stack: "c"},
          line("mean latency (ms)", d.latency_ms_mean, COLORS[0], {type: "line", yAxisID: "ms", pointRadius: 2,
                                                                   order: -1}),
        ]}, options: {scales: {x: {stacked: true},
                               y: {stacked: true, beginAtZero: true, title: {display: true, text: "checkouts"}},
                               ms: {position: "right", beginAtZero: true, grid: {drawOnChartArea: false},
                                    title: {display: true, text: "ms"}}}}},
        table: "",
      };
    },

    payments(d) {
      const procs = d.processors;
      const outcomes = [...new Set(procs.flatMap((p) => Object.keys(p.counters_total)
        .filter((k) => k.startsWith("authorize:"))))].sort();
      const datasets = outcomes.map((k, i) => ({label: k.replace("authorize:", ""), backgroundColor: COLORS[i % 8],
        data: procs.map((p) => p.counters_total[k] || 0)}));
      return {
        summary: kpis([["routing order", d.order.join(" > ")],
                       ["open breakers", procs.filter((p) => p.worst_state === "open").length]]),
        chart: datasets.length ? {type: "bar", data: {labels: procs.map((p) => p.processor), datasets},
          options: {scales: {x: {stacked: true}, y: {stacked: true, title: {display: true,
                    text: "authorizations (since start)"}}}}} : null,
        table: table(null, [["processor", (p) => esc(p.processor)], ["position", (p) => esc(p.position ?? "-"), "num"],
                            ["breaker", (p) => badge(p.worst_state)],
                            ["window calls", (p) => num(p.window_calls, 0), "num"],
                            ["window failures", (p) => num(p.window_failure_pct, 1) + "%", "num"],
                            ["processes reporting", (p) => num(p.instances.length, 0), "num"]], procs),
      };
    },

    inventory(d) {
      const stale = d.feeds.filter((f) => f.stale).length;
      return {
        summary: kpis([["warehouses", d.feeds.length], ["stale feeds", stale],
                       ["SKUs at sell-out risk", d.risks.length], ["stale after", d.stale_after_h + " h"]]),
        // Ages in minutes on a log axis from 6 s up to the staleness threshold: a feed that reported a minute ago
        // and one a day old both show, and the dashed threshold line sits at the top (on a linear axis sized to
        // the threshold, healthy feeds were invisible slivers; sized to minutes, they looked maxed out).
        chart: {type: "bar", data: {labels: d.feeds.map((f) => f.warehouse), datasets: [
          {label: "feed age (min)", data: d.feeds.map((f) => ageMin(f.feed_age_h)), backgroundColor: COLORS[0]},
          {label: "stock age (min)", data: d.feeds.map((f) => ageMin(f.stock_age_h)), backgroundColor: COLORS[6]},
          {type: "line", label: "stale after (min)", data: d.feeds.map(() => d.stale_after_h * 60),
           borderColor: COLORS[2], borderDash: [6, 4], pointRadius: 0, fill: false}]},
          options: {scales: {y: {type: "logarithmic", min: AGE_FLOOR_MIN, suggestedMax: d.stale_after_h * 60 * 1.5,
                                 title: {display: true, text: "minutes since last update (log)"}}}}},
        table: table("feeds", [["warehouse", (f) => esc(f.warehouse)],
                               ["feed", (f) => badge(f.stale ? "stale" : "fresh")],
                               ["last event received", (f) => esc(when(f.last_received_at))],
                               ["events", (f) => num(f.events, 0), "num"],
                               ["stock updated", (f) => esc(when(f.stock_updated_at))]], d.feeds)
          + (d.plan_error ? `<p class="error">${esc(d.plan_error)}</p>` : "")
          + table("SKUs at stock risk", [["sku", (r) => esc(r.sku)], ["warehouse", (r) => esc(r.warehouse)],
                  ["available", (r) => num(r.available, 0), "num"],
                  ["P(stockout)", (r) => pct(r.stockout_probability), "num"],
                  ["stockout by", (r) => esc(r.projected_stockout_date || "-")],
                  ["actions", (r) => esc(r.actions.join(", ")), "wrap"]], d.risks),
      };
    },

    fulfillment(d) {
      const whs = d.warehouses;
      const q = (o, k) => (o ? o[k] : null);
      return {
        summary: kpis([["orders with events", num(d.orders, 0)], ["lanes", d.lanes.length],
                       ["window", d.window_days + " days"]]),
        chart: whs.length ? {type: "bar", data: {labels: whs.map((w) => w.warehouse), datasets: [
          {label: "pick/pack p50", data: whs.map((w) => q(w.pick_pack_h, "p50")), backgroundColor: COLORS[0]},
          {label: "pick/pack p90", data: whs.map((w) => q(w.pick_pack_h, "p90")), backgroundColor: "#93c5fd"},
          {label: "handoff p50", data: whs.map((w) => q(w.handoff_h, "p50")), backgroundColor: COLORS[4]},
          {label: "handoff p90", data: whs.map((w) => q(w.handoff_h, "p90")), backgroundColor: "#fdba74"}]},
          options: {scales: {y: {beginAtZero: true, title: {display: true, text: "hours"}}}}} : null,
        // A lane starts at the warehouse (as the store names it), its region beside it when that differs.
        table: table("transit by lane", [["from", (l) => esc(l.origin) + (l.origin_region && l.origin_region !== l.origin
                       ? ` <small class="muted">${esc(l.origin_region)}</small>` : "")],
                     ["to", (l) => esc(l.destination)],
                     ["carrier", (l) => esc(l.carrier)], ["deliveries", (l) => num(l.deliveries, 0), "num"],
                     ["p50 h", (l) => num(l.transit_h.p50, 1), "num"], ["p90 h", (l) => num(l.transit_h.p90, 1), "num"]],
                     d.lanes)
          + table("warehouse measures", [["warehouse", (m) => esc(m.warehouse)],
                  ["split shipments", (m) => pct(m.split_shipment_rate), "num"],
                  ["backordered lines", (m) => pct(m.backorder_rate), "num"],
                  ["inventory age p50 (d)", (m) => num(m.inventory_age_p50_d, 1), "num"]], d.measures || [])
          + table("returns (" + pct((d.returns_summary || {}).return_rate) + " of units sold)",
                  [["sku", (r) => esc(r.sku)], ["returned", (r) => num(r.units_returned, 0), "num"],
                   ["sold", (r) => num(r.units_sold, 0), "num"], ["return rate", (r) => pct(r.return_rate), "num"],
                   ["reasons", (r) => esc(Object.entries(r.reasons).map(([k, v]) => k + " " + v).join(", ")), "wrap"]],
                  d.returns || [])
          + ((d.listing_flags || []).length ? table("listing work", [["sku", (f) => esc(f.sku)],
                  ["kind", (f) => esc(f.kind)], ["note", (f) => esc(f.note), "wrap"]], d.listing_flags) : ""),
      };
    },

    promise(d) {
      return {
        summary: kpis([["on time", pct(d.on_time_rate)], ["kept", num(d.kept, 0)], ["missed", num(d.missed, 0)],
                       ["pending", num(d.pending, 0)]]),
        chart: d.lateness_days.length ? {type: "bar", data: {
          labels: d.lateness_days.map((x) => (x.days > 0 ? "+" : "") + x.days + " d"),
          datasets: [{label: "delivered orders by days vs promised day (negative = early)",
                      data: d.lateness_days.map((x) => x.orders),
                      backgroundColor: d.lateness_days.map((x) => (x.days > 0 ? COLORS[2] : COLORS[1]))}]},
          options: {scales: {y: {beginAtZero: true, ticks: {precision: 0}}}}} : null,
        table: table("by promised confidence", [["confidence", (c) => pct(c.confidence)],
                     ["resolved", (c) => num(c.resolved, 0), "num"], ["kept", (c) => num(c.kept, 0), "num"],
                     ["on time", (c) => pct(c.on_time_rate), "num"]], d.by_confidence),
      };
    },

    plans(d) {
      const r = d.restock, c = d.capacity;
      const slots = c.slots || [];
      const summary = [];
      if (r.summary) {
        summary.push(["restock lines", r.summary.lines], ["to order", r.summary.orders],
                     ["units to order", num(r.summary.units_to_order, 0)], ["urgent", r.summary.urgent]);
      }
      if (c.peak_replicas !== undefined) {
        if (c.planner_now) summary.push(["replicas now (predictive planner)", c.planner_now.desired_replicas]);
        summary.push(["replicas now (reactive floor)", c.reactive_floor_now], ["peak planned replicas", c.peak_replicas]);
      }
      return {
        summary: kpis(summary),
        // The forecast lines are drawn over the replica bars (lower order on top) and the bars are translucent:
        // opaque bars in front hid the lines the replicas are planned from.
        chart: slots.length ? {data: {labels: slots.map((s) => hhmm(s.start)), datasets: [
          line("forecast upper (req/min)", slots.map((s) => s.forecast_upper_rpm), COLORS[4],
               {type: "line", yAxisID: "rpm", pointRadius: 2, order: 0}),
          line("forecast mean (req/min)", slots.map((s) => s.forecast_mean_rpm), COLORS[0],
               {type: "line", yAxisID: "rpm", pointRadius: 2, order: 0}),
          {type: "bar", label: "planned replicas", data: slots.map((s) => s.replicas),
           backgroundColor: "rgba(147, 51, 234, 0.25)", borderColor: COLORS[3], borderWidth: 1, yAxisID: "y", order: 1}]},
          options: {scales: {y: {beginAtZero: true, ticks: {precision: 0}, title: {display: true, text: "replicas"},
                                 suggestedMax: Math.max(...slots.map((s) => s.replicas)) * 2},
                             rpm: {position: "right", beginAtZero: true, grid: {drawOnChartArea: false},
                                   title: {display: true, text: "requests / min"}}}}} : null,
        table: (r.error ? `<p class="error">${esc(r.error)}</p>` : "")
          + table(`restock plan (as of ${r.as_of || "-"})`, [["sku", (l) => esc(l.sku)],
                  ["warehouse", (l) => esc(l.warehouse)], ["on hand", (l) => num(l.on_hand, 0), "num"],
                  ["on order", (l) => num(l.on_order, 0), "num"], ["reorder point", (l) => num(l.reorder_point, 0), "num"],
                  ["order up to", (l) => num(l.order_up_to, 0), "num"], ["order qty", (l) => num(l.order_qty, 0), "num"],
                  ["order by", (l) => esc(l.order_by || "-")], ["P(stockout)", (l) => pct(l.stockout_probability), "num"],
                  ["urgent", (l) => (l.urgent ? '<span class="badge bad">urgent</span>' : "")]], r.lines || [])
          + (c.error ? `<p class="error">${esc(c.error)}</p>` : "")
          + table("capacity plan", [["from", (s) => esc(when(s.start))], ["to", (s) => esc(hhmm(s.end))],
                  ["request at", (s) => esc(hhmm(s.request_at))], ["replicas", (s) => num(s.replicas, 0), "num"],
                  ["upper req/min", (s) => num(s.forecast_upper_rpm, 1), "num"]], slots),
      };
    },

    cache(d) {
      const names = Object.keys(d.nodes);
      const total = names.reduce((n, k) => n + d.nodes[k].requests, 0);
      const fromCache = names.reduce((n, k) => n + d.nodes[k].from_cache, 0);
      const stale = names.reduce((n, k) => n + d.nodes[k].stale, 0);
      const series = d.origin_requests_per_min || [];
      return {
        summary: kpis([["hit ratio, all nodes", total ? pct(fromCache / total) : "-"], ["stale serves", stale],
                       ["origin req/min (last)", series.length ? series[series.length - 1].requests : "-"]]),
        chart: series.length ? {type: "line", data: {labels: series.map((p) => hhmm(new Date(p.minute * 1000).toISOString())),
          datasets: [{label: "origin requests / min (from the shield)", data: series.map((p) => p.requests),
                      borderColor: COLORS[0], pointRadius: 0}]},
          options: {scales: {y: {beginAtZero: true, ticks: {precision: 0}}}}} : null,
        table: table(`edge nodes (last ${d.window_minutes} min)`, [["node", (k) => esc(k)],
                     ["role", (k) => esc(d.nodes[k].role)], ["requests", (k) => num(d.nodes[k].requests, 0), "num"],
                     ["hit ratio", (k) => (d.nodes[k].hit_ratio === null ? "-" : pct(d.nodes[k].hit_ratio)), "num"],
                     ["stale serves", (k) => num(d.nodes[k].stale, 0), "num"],
                     ["errors", (k) => num(d.nodes[k].errors, 0), "num"]], names),
      };
    },

    alerts(d) {
      const bySource = {};
      for (const a of d.alerts) bySource[a.source] = (bySource[a.source] || 0) + 1;
      const sources = Object.keys(bySource).sort();
      return {
        summary: kpis([["alerts (" + d.window_hours + " h)", d.alerts.length], ["actions logged", d.actions.length]]),
        chart: sources.length ? {type: "bar", data: {labels: sources, datasets: [
          {label: "alerts by source", data: sources.map((s) => bySource[s]), backgroundColor: COLORS[2]}]},
          options: {indexAxis: "y", plugins: {legend: {display: false}}, scales: {x: {ticks: {precision: 0}}}}} : null,
        table: table("alerts", [["at", (a) => esc(when(a.at))], ["source", (a) => esc(a.source)],
                     ["metric", (a) => esc(a.metric)], ["observed", (a) => num(a.observed), "num"],
                     ["expected range", (a) => (a.lower === null || a.lower === undefined ? "-"
                       : `${num(a.lower)} .. ${num(a.upper)}`), "num"],
                     ["message", (a) => esc(a.message), "wrap"]], d.alerts)
          + table("action log", [["at", (a) => esc(when(a.at))], ["rule", (a) => esc(a.rule)],
                  ["action", (a) => esc(a.action_type)], ["status", (a) => badge(a.status)],
                  ["why", (a) => esc(a.reason), "wrap"],
                  ["values", (a) => esc(JSON.stringify(a.signal_values || {})), "wrap"]], d.actions),
      };
    },
  };

  // ---------------------------------------------------------------------------------------------- refresh
  async function refreshPanel(el) {
    const name = el.dataset.panel;
    let data;
    try {
      const res = await fetch(`/dashboard/api/${name}`, {credentials: "same-origin", cache: "no-store"});
      if (res.status === 401) { window.location.assign("/dashboard/login"); return; }
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      data = await res.json();
    } catch (err) {
      el.dataset.state = "error";
      el.querySelector(".empty").textContent = `could not load: ${err.message}`;
      return;
    }
    if (data.state !== "ready") {
      draw(name, el, null);
      el.querySelector(".summary").innerHTML = "";
      el.querySelector(".table").innerHTML = "";
      el.querySelector(".empty").textContent = `no data yet: ${data.message || ""}`;
      el.dataset.points = "0";
      el.dataset.rows = "0";
      el.dataset.state = "empty";
      return;
    }
    try {
      const out = RENDER[name](data);
      el.querySelector(".summary").innerHTML = out.summary || "";
      el.querySelector(".table").innerHTML = out.table || "";
      el.dataset.points = String(draw(name, el, out.chart));
      el.dataset.rows = String(el.querySelectorAll(".table tbody tr").length);
      el.dataset.state = "ready";
    } catch (err) {
      el.dataset.state = "error";
      el.querySelector(".empty").textContent = `could not draw: ${err.message}`;
    }
  }

  let refreshing = false;

  async function refreshAll() {
    // A slow server (a plan being fitted) must not get a second round of polls on top of the first.
    if (refreshing) return;
    refreshing = true;
    try {
      const panels = Array.from(document.querySelectorAll(".panel[data-panel]"));
      await Promise.all(panels.map(refreshPanel));
    } finally {
      refreshing = false;
    }
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
    document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
  }

  function start() {
    const every = Number(document.body.dataset.refreshMs) || 5000;
    refreshAll();
    setInterval(refreshAll, every);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
