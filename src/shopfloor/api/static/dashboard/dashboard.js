// shopfloor dashboard: every panel fetches its JSON from /dashboard/api/<panel> and draws it with Chart.js.
// Each panel element gets data-state="loading|ready|empty|error", and once drawn data-points (chart values)
// and data-rows (table rows), which the end-to-end test reads. The health strip at the top (#health) sums the
// panels up as one tile per signal (data-level="ok|warn|bad|idle|wait"), so an operator sees at a glance
// whether the store is healthy and which panel to look at. Every time on the page is UTC, as the server sends it.
"use strict";

(function () {
  const charts = {};
  const latest = {};  // panel name -> the JSON it last drew (ready or empty), for the health strip
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
  // Times come from the server in UTC (ISO 8601 with +00:00) and are shown in UTC, labelled as such.
  function hhmm(iso) { return iso ? iso.substring(11, 16) : ""; }
  function when(iso) { return iso ? iso.substring(0, 19).replace("T", " ") : "-"; }
  function mean(values) {
    const xs = values.filter((v) => v !== null && v !== undefined);
    return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null;
  }
  function sum(values) { return values.reduce((a, b) => a + (b || 0), 0); }
  function signed(ratio) { return ratio === null ? "" : (ratio >= 0 ? "+" : "") + num(ratio * 100, 0) + "%"; }
  // Axis helpers: every chart says what its axes measure, and time axes say they are UTC.
  function title(text) { return {display: true, text}; }
  function timeAxis(text, extra) {
    return Object.assign({title: title(text || "time (UTC)"),
                          ticks: {maxRotation: 0, autoSkip: true, autoSkipPadding: 18}}, extra || {});
  }
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

  // ---------------------------------------------------------------------------------------------- health
  // Checks shared by the panels and the health strip: what the numbers mean next to their context.

  function trafficCheck(d) {
    const k = Math.min(15, d.requests.length);
    const req = d.requests.slice(-k), errs = (d.errors || []).slice(-k);
    const observed = mean(req), forecast = mean(d.forecast_mean.slice(-k)), upper = mean(d.forecast_upper.slice(-k));
    const errors = sum(errs), total = sum(req);
    return {observed, forecast, upper, errors, errorRate: total ? errors / total : null,
            vsForecast: forecast ? (observed - forecast) / forecast : null};
  }

  function funnelCheck(d) {
    const last = (steps) => (steps && steps.length && steps[0].count ? steps[steps.length - 1].from_first : null);
    const by = {};
    for (const s of d.steps) by[s.stage] = s.count;
    return {conversion: last(d.steps), yesterday: last((d.yesterday || {}).steps), by};
  }

  function paymentsCheck(d) {
    const configured = d.configured_order && d.configured_order.length ? d.configured_order : d.order;
    return {configured, failover: Boolean(d.order.length && configured.length && d.order[0] !== configured[0]),
            open: d.processors.filter((p) => p.worst_state === "open").length,
            halfOpen: d.processors.filter((p) => p.worst_state === "half_open").length};
  }

  // Authorization outcomes (the router's counters), in the order and colours they are drawn.
  const OUTCOMES = {
    approved: {label: "approved", color: "#16a34a"},
    declined: {label: "declined (card)", color: "#f59e0b"},
    not_charged: {label: "failed, not charged", color: "#dc2626"},
    unknown: {label: "failed, outcome unknown", color: "#7f1d1d"},
    breaker_open: {label: "skipped, breaker open", color: "#9ca3af"},
  };
  function outcomeRank(key) {
    const i = Object.keys(OUTCOMES).indexOf(key.replace("authorize:", ""));
    return i < 0 ? 99 : i;
  }

  function ready(name) { return latest[name] && latest[name].state === "ready" ? latest[name] : null; }
  function waiting(name) { return !latest[name]; }
  function notReady(name) {
    const d = latest[name];
    return {level: d ? "idle" : "wait", value: "-", ctx: d ? (d.message || d.state) : "loading..."};
  }

  // One function per tile: {signal, panel, label, rule, level: ok|warn|bad|idle|wait, value, ctx}.
  const SIGNALS = [
    function checkout() {
      const base = {signal: "checkout", panel: "checkout", label: "Checkout success",
                    rule: "share of checkouts that could succeed (sold-out refusals left out); amber below 97 %, "
                          + "red below 90 %"};
      const d = ready("checkout");
      if (!d) return Object.assign(base, notReady("checkout"));
      const s = d.summary, y = d.yesterday || {};
      const rate = s.success_rate;
      return Object.assign(base, {
        level: rate === null ? "idle" : rate < 0.9 ? "bad" : rate < 0.97 ? "warn" : "ok",
        value: pct(rate),
        ctx: `${num(s.succeeded, 0)} ok, ${num(s.failed, 0)} failed, p95 ${num(s.latency_ms_p95, 0)} ms `
             + `(mean ${num(s.latency_ms_mean, 0)} ms, last ${d.window_minutes} min)` + (y.attempts ? `; yesterday ${pct(y.success_rate)}` : "")});
    },
    function conversion() {
      const base = {signal: "conversion", panel: "funnel", label: "Conversion",
                    rule: "orders over visits in the last hour; amber when under 70 % of the same hour yesterday"};
      const d = ready("funnel");
      if (!d) return Object.assign(base, notReady("funnel"));
      const f = funnelCheck(d), b = f.by;
      const dropped = f.yesterday !== null && f.conversion !== null && f.conversion < 0.7 * f.yesterday;
      return Object.assign(base, {
        level: dropped ? "warn" : "ok", value: pct(f.conversion),
        ctx: `visits ${num(b.page_view, 0)} \u2192 carts ${num(b.add_to_cart, 0)} \u2192 checkouts `
             + `${num(b.checkout_started, 0)} \u2192 orders ${num(b.order_confirmed, 0)}`
             + (f.yesterday === null ? "" : `; yesterday ${pct(f.yesterday)}`)});
    },
    function traffic() {
      const base = {signal: "traffic", panel: "traffic", label: "Traffic vs forecast",
                    rule: "requests/min over the last 15 min against the forecast for those minutes; amber above the "
                          + "forecast band, under half the forecast or on any 5xx, red when over 1 % are 5xx"};
      const d = ready("traffic");
      if (!d) return Object.assign(base, notReady("traffic"));
      const t = trafficCheck(d);
      const above = t.upper !== null && t.observed > t.upper;
      const below = t.forecast !== null && t.forecast >= 10 && t.observed < 0.5 * t.forecast;
      return Object.assign(base, {
        level: t.errorRate !== null && t.errorRate > 0.01 ? "bad" : (t.errors > 0 || above || below) ? "warn" : "ok",
        value: `${num(t.observed, 0)}/min`,
        ctx: (t.forecast === null ? "no forecast yet" : `forecast ${num(t.forecast, 0)}/min (${signed(t.vsForecast)})`)
             + (above ? ", above the forecast band" : below ? ", far below forecast" : "")
             + `; 5xx: ${num(t.errors, 0)} in 15 min`});
    },
    function soldOut() {
      const base = {signal: "sold_out", panel: "checkout", label: "Sold out",
                    rule: "checkouts refused because the stock ran out (right answers, but lost sales); amber on any"};
      if (waiting("checkout") && waiting("inventory")) return Object.assign(base, notReady("checkout"));
      const co = ready("checkout"), inv = ready("inventory");
      if (!co && !inv) return Object.assign(base, notReady("checkout"));
      const refused = co ? co.summary.refused_out_of_stock : 0;
      return Object.assign(base, {
        level: refused > 0 ? "warn" : "ok", value: num(refused, 0),
        ctx: `checkouts refused, sold out (last hour); ${inv ? num(inv.risks.length, 0) : "-"} SKUs at sell-out risk`});
    },
    function payments() {
      const base = {signal: "payments", panel: "payments", label: "Payments",
                    rule: "red when a processor's breaker is open; amber when traffic failed over to another "
                          + "processor or a breaker is half-open"};
      const d = ready("payments");
      if (!d) return Object.assign(base, notReady("payments"));
      const p = paymentsCheck(d);
      let since = "";
      const moved = ready("alerts") && latest.alerts.actions.find((a) => a.action_type === "reorder_processors");
      if (p.failover && moved) since = ` since ${hhmm(moved.at)} UTC, by rule ${moved.rule}`;
      const breakers = [p.open ? `${p.open} open` : "", p.halfOpen ? `${p.halfOpen} half-open` : ""]
        .filter(Boolean).join(", ");
      return Object.assign(base, {
        level: p.open ? "bad" : (p.failover || p.halfOpen) ? "warn" : "ok",
        value: p.open ? `${p.open} breaker${p.open > 1 ? "s" : ""} open` : p.failover ? "failed over" : "normal",
        ctx: (p.failover ? `${d.order[0]} first${since} (configured: ${p.configured[0]} first)`
              : `routing ${d.order.join(" > ")}`) + `; breakers: ${breakers || "all closed"}`});
    },
    function feeds() {
      const base = {signal: "feeds", panel: "inventory", label: "Warehouse feeds",
                    rule: "red when a warehouse's stock or fulfillment feed has not reported within its staleness "
                          + "threshold"};
      const inv = ready("inventory");
      if (!inv) return Object.assign(base, notReady("inventory"));
      const stale = inv.feeds.filter((f) => f.stale).map((f) => f.warehouse);
      const ful = ready("fulfillment");
      let slowest = "";
      if (ful) {
        const worst = ful.warehouses.filter((w) => w.handoff_h && w.handoff_h.p90 !== null)
          .sort((a, b) => b.handoff_h.p90 - a.handoff_h.p90)[0];
        if (worst) slowest = `; slowest handoff p90 ${num(worst.handoff_h.p90, 0)} h (${worst.warehouse})`;
      }
      return Object.assign(base, {
        level: stale.length ? "bad" : "ok", value: `${stale.length} of ${inv.feeds.length} stale`,
        ctx: (stale.length ? `stale: ${stale.join(", ")}` : `all reported within ${inv.stale_after_h} h`) + slowest});
    },
    function alerts() {
      const base = {signal: "alerts", panel: "alerts", label: "Alerts (24 h)",
                    rule: "amber when an alert was raised in the last hour"};
      const d = latest.alerts;
      if (!d) return Object.assign(base, notReady("alerts"));
      if (d.state !== "ready") {
        return Object.assign(base, {level: d.state === "empty" ? "ok" : "idle", value: "0",
                                    ctx: d.state === "empty" ? "all quiet: no alerts, no rule actions" : d.message});
      }
      const recent = d.alerts.filter((a) => Date.now() - Date.parse(a.at) < 3600e3);
      const a = d.alerts[0], act = d.actions[0];
      return Object.assign(base, {
        level: recent.length ? "warn" : "ok", value: num(d.alerts.length, 0),
        ctx: (act ? `${d.actions.length} rule actions; ` : "")
             + (a ? `latest ${hhmm(a.at)} UTC: ${a.message || a.metric}` : "no alerts")});
    },
  ];

  function renderHealth() {
    const box = document.getElementById("health");
    if (!box) return;
    let tiles;
    try {
      tiles = SIGNALS.map((f) => f());
    } catch (err) {
      box.querySelector(".verdict").dataset.level = "idle";
      box.querySelector(".verdict").textContent = `could not sum the panels up: ${err.message}`;
      return;
    }
    box.querySelector(".tiles").innerHTML = tiles.map((t) =>
      `<a class="tile" href="#panel-${esc(t.panel)}" data-signal="${esc(t.signal)}" data-level="${esc(t.level)}"`
      + ` title="${esc(t.ctx + "\n\n" + t.rule)}"><span class="label">${esc(t.label)}`
      + `<span class="lvl">${esc(LEVEL_WORD[t.level])}</span></span><b class="value">${esc(t.value)}</b><span class="ctx">${esc(t.ctx)}</span></a>`).join("");
    const bad = tiles.filter((t) => t.level === "bad"), warn = tiles.filter((t) => t.level === "warn");
    const verdict = box.querySelector(".verdict");
    let level, text;
    if (bad.length) {
      level = "bad"; text = "Needs attention: " + bad.concat(warn).map((t) => t.label.toLowerCase()).join(", ");
    } else if (warn.length) {
      level = "warn"; text = "Watch: " + warn.map((t) => t.label.toLowerCase()).join(", ");
    } else if (tiles.some((t) => t.level === "wait")) {
      level = "wait"; text = "Checking...";
    } else if (tiles.filter((t) => ["checkout", "conversion", "traffic"].includes(t.signal))
               .every((t) => t.level === "idle")) {
      level = "idle"; text = "No traffic yet: the panels fill as shoppers arrive";
    } else {
      level = "ok"; text = "Healthy: every signal is within its normal range";
    }
    verdict.dataset.level = level;
    verdict.textContent = text;
    box.dataset.level = level;
  }
  const LEVEL_WORD = {ok: "ok", warn: "watch", bad: "act", idle: "no data", wait: "..."};

  // ---------------------------------------------------------------------------------------------- renderers
  // Each returns {summary: html, chart: Chart.js config or null, table: html}.

  const RENDER = {
    traffic(d) {
      const labels = d.minutes.concat(d.future_minutes).map(hhmm);
      const pad = (arr, before, after) => new Array(before).fill(null).concat(arr, new Array(after).fill(null));
      const n = d.minutes.length, h = d.future_minutes.length;
      const t = trafficCheck(d);
      const errors = d.errors || [];
      return {
        summary: kpis([["requests/min, last 15 min", num(d.summary.requests_last_15m_per_min)],
                       ["forecast for those minutes" + (t.vsForecast === null ? "" : ` (${signed(t.vsForecast)})`),
                        t.forecast === null ? "-" : num(t.forecast)],
                       ["5xx errors, last 15 min", num(t.errors, 0)],
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
          // Server errors on their own axis (a handful of 5xx would not show next to hundreds of requests).
          {type: "bar", label: "5xx errors/min", data: pad(errors, 0, h), backgroundColor: COLORS[2], yAxisID: "err",
           order: -2},
        ]}, options: {scales: {x: timeAxis("minute (UTC)"),
                               y: {beginAtZero: true, title: title("requests / min")},
                               err: {position: "right", beginAtZero: true, suggestedMax: 5, ticks: {precision: 0},
                                     grid: {drawOnChartArea: false}, title: title("5xx errors / min")}}}},
        table: "",
      };
    },

    funnel(d) {
      const steps = d.steps;
      const f = funnelCheck(d);
      return {
        summary: kpis([["first step", num(steps[0].count, 0)],
                       ["overall conversion", pct(f.conversion)],
                       [f.yesterday === null ? "same hour yesterday (no visits then)" : "same hour yesterday",
                        f.yesterday === null ? "-" : pct(f.yesterday)]]),
        chart: {type: "bar", data: {labels: steps.map((s) => s.stage), datasets: [
          {label: "events", data: steps.map((s) => s.count), backgroundColor: COLORS[0]}]},
          options: {indexAxis: "y", plugins: {legend: {display: false}},
                    scales: {x: {beginAtZero: true, title: title(`events, last ${d.window_minutes || 60} min`)},
                             y: {title: title("funnel step")}}}},
        table: table(null, [["stage", (s) => esc(s.stage)], ["count", (s) => num(s.count, 0), "num"],
                            ["from previous", (s) => pct(s.from_previous), "num"],
                            ["from first", (s) => pct(s.from_first), "num"]], steps),
      };
    },

    checkout(d) {
      const s = d.summary, y = d.yesterday || {};
      return {
        // Sold-out refusals (409) are right answers, not failures: shown apart and left out of the rate.
        summary: kpis([["attempts", num(s.attempts, 0)], ["succeeded", num(s.succeeded, 0)],
                       ["refused, sold out", num(s.refused_out_of_stock, 0)], ["failed", num(s.failed, 0)],
                       ["success rate (excl. sold out)", pct(s.success_rate)],
                       [y.attempts ? "same hour yesterday" : "same hour yesterday (no checkouts then)",
                        y.attempts ? pct(y.success_rate) : "-"],
                       ["mean latency", num(s.latency_ms_mean, 1) + " ms"],
                       ["p95 latency", num(s.latency_ms_p95, 1) + " ms"]]),
        chart: {data: {labels: d.minutes.map(hhmm), datasets: [
          {type: "bar", label: "succeeded", data: d.succeeded, backgroundColor: COLORS[1], yAxisID: "y", stack: "c"},
          {type: "bar", label: "refused, sold out", data: d.refused, backgroundColor: "#fcd34d", yAxisID: "y",
           stack: "c"},
          {type: "bar", label: "failed", data: d.attempts.map((a, i) => Math.max(0, a - d.succeeded[i] - d.refused[i])),
           backgroundColor: COLORS[2], yAxisID: "y", stack: "c"},
          line("mean latency (ms)", d.latency_ms_mean, COLORS[0], {type: "line", yAxisID: "ms", pointRadius: 2,
                                                                   order: -1}),
          line("p95 latency (ms)", d.latency_ms_p95, COLORS[0], {type: "line", yAxisID: "ms", pointRadius: 2,
                                                                 borderDash: [5, 4], order: -1}),
        ]}, options: {scales: {x: timeAxis("minute (UTC)", {stacked: true}),
                               y: {stacked: true, beginAtZero: true, ticks: {precision: 0},
                                   title: title("checkouts / min")},
                               ms: {position: "right", beginAtZero: true, grid: {drawOnChartArea: false},
                                    title: title("latency (ms)")}}}},
        table: "",
      };
    },

    payments(d) {
      const procs = d.processors;
      const p = paymentsCheck(d);
      const outcomes = [...new Set(procs.flatMap((x) => Object.keys(x.counters_total)
        .filter((k) => k.startsWith("authorize:"))))]
        .sort((a, b) => outcomeRank(a) - outcomeRank(b) || a.localeCompare(b));
      // Colours by meaning (approved green, declines amber, processor failures red, skips grey), not by position:
      // a failure outcome must never be drawn in the "approved" green.
      const datasets = outcomes.map((k) => {
        const o = OUTCOMES[k.replace("authorize:", "")] || {label: k.replace("authorize:", ""), color: "#7f1d1d"};
        return {label: o.label, backgroundColor: o.color, data: procs.map((x) => x.counters_total[k] || 0)};
      });
      return {
        summary: kpis([["routing order", d.order.join(" > ")],
                       ["failover", p.failover ? `yes: ${d.order[0]} first` : "no"],
                       ["open breakers", p.open]]),
        chart: datasets.length ? {type: "bar", data: {labels: procs.map((x) => x.processor), datasets},
          options: {scales: {x: {stacked: true, title: title("processor")},
                             y: {stacked: true, beginAtZero: true, ticks: {precision: 0},
                                 title: title("authorizations")}}}} : null,
        // The outcome counts come from the server processes' reports (each counts since it started); with none
        // fresh enough there is nothing to draw, which the panel says instead of showing an empty chart.
        table: (datasets.length ? "" : '<p class="muted note">no authorizations counted by the running server '
                + `processes (reports older than ${num((d.snapshot_max_age_s || 300) / 60, 0)} min are dropped): `
                + "outcomes per processor are drawn once checkouts reach a processor</p>")
          + table(null, [["processor", (p) => esc(p.processor)], ["position", (p) => esc(p.position ?? "-"), "num"],
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
          options: {scales: {x: {title: title("warehouse")},
                             y: {type: "logarithmic", min: AGE_FLOOR_MIN, suggestedMax: d.stale_after_h * 60 * 1.5,
                                 title: title("minutes since last update (log)")}}}},
        table: table("feeds", [["warehouse", (f) => esc(f.warehouse)],
                               ["feed", (f) => badge(f.stale ? "stale" : "fresh")],
                               ["last event received (UTC)", (f) => esc(when(f.last_received_at))],
                               ["events", (f) => num(f.events, 0), "num"],
                               ["stock updated (UTC)", (f) => esc(when(f.stock_updated_at))]], d.feeds)
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
          options: {scales: {x: {title: title("warehouse")},
                             y: {beginAtZero: true, title: title("hours")}}}} : null,
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
          options: {scales: {x: {title: title("delivered vs promised day (days; negative = early)")},
                             y: {beginAtZero: true, ticks: {precision: 0}, title: title("orders")}}}} : null,
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
          options: {scales: {x: timeAxis("slot start (UTC)"),
                             y: {beginAtZero: true, ticks: {precision: 0}, title: title("replicas"),
                                 suggestedMax: Math.max(...slots.map((s) => s.replicas)) * 2},
                             rpm: {position: "right", beginAtZero: true, grid: {drawOnChartArea: false},
                                   title: title("requests / min")}}}} : null,
        table: (r.error ? `<p class="error">${esc(r.error)}</p>` : "")
          + table(`restock plan (as of ${r.as_of || "-"})`, [["sku", (l) => esc(l.sku)],
                  ["warehouse", (l) => esc(l.warehouse)], ["on hand", (l) => num(l.on_hand, 0), "num"],
                  ["on order", (l) => num(l.on_order, 0), "num"], ["reorder point", (l) => num(l.reorder_point, 0), "num"],
                  ["order up to", (l) => num(l.order_up_to, 0), "num"], ["order qty", (l) => num(l.order_qty, 0), "num"],
                  ["order by", (l) => esc(l.order_by || "-")], ["P(stockout)", (l) => pct(l.stockout_probability), "num"],
                  ["urgent", (l) => (l.urgent ? '<span class="badge bad">urgent</span>' : "")]], r.lines || [])
          + (c.error ? `<p class="error">${esc(c.error)}</p>` : "")
          + table("capacity plan (UTC)", [["from", (s) => esc(when(s.start))], ["to", (s) => esc(hhmm(s.end))],
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
          options: {scales: {x: timeAxis("minute (UTC)"),
                             y: {beginAtZero: true, ticks: {precision: 0}, title: title("requests / min")}}}} : null,
        table: table(`edge nodes (last ${d.window_minutes} min)`, [["node", (k) => esc(k)],
                     ["role", (k) => esc(d.nodes[k].role)], ["requests", (k) => num(d.nodes[k].requests, 0), "num"],
                     ["hit ratio", (k) => (d.nodes[k].hit_ratio === null ? "-" : pct(d.nodes[k].hit_ratio)), "num"],
                     ["stale serves", (k) => num(d.nodes[k].stale, 0), "num"],
                     ["errors", (k) => num(d.nodes[k].errors, 0), "num"]], names),
      };
    },

    alerts(d) {
      // When things happened: alerts and rule actions per hour over the window, on a UTC time axis (a count by
      // source said nothing about when, and with one source it was a single full-width bar).
      const hours = Math.max(1, Math.round(d.window_hours || 24));
      const end = Math.ceil((Date.now() + 1) / 3600e3) * 3600e3;
      const slots = Array.from({length: hours}, (_, i) => end - (hours - i) * 3600e3);
      const bucket = (items) => {
        const counts = new Array(hours).fill(0);
        for (const x of items) {
          const i = Math.floor((Date.parse(x.at) - slots[0]) / 3600e3);
          if (i >= 0 && i < hours) counts[i] += 1;
        }
        return counts;
      };
      const acted = d.actions.filter((a) => a.status === "applied");
      const other = d.actions.filter((a) => a.status !== "applied");
      return {
        summary: kpis([["alerts (" + d.window_hours + " h)", d.alerts.length], ["actions logged", d.actions.length],
                       ["latest alert (UTC)", d.alerts.length ? d.alerts[0].at.substring(11, 19) : "none"]]),
        chart: {type: "bar", data: {labels: slots.map((t) => new Date(t).toISOString().substring(11, 16)), datasets: [
          {label: "alerts", data: bucket(d.alerts), backgroundColor: COLORS[2], stack: "alerts"},
          {label: "rule actions applied", data: bucket(acted), backgroundColor: COLORS[0], stack: "actions"},
          {label: "rule actions dry-run/skipped/failed", data: bucket(other), backgroundColor: "#fbbf24",
           stack: "actions"}]},
          options: {scales: {x: timeAxis("hour starting (UTC)", {stacked: true}),
                             y: {beginAtZero: true, stacked: true, ticks: {precision: 0}, title: title("count")}}}},
        table: table("alerts", [["at (UTC)", (a) => esc(when(a.at))], ["source", (a) => esc(a.source)],
                     ["metric", (a) => esc(a.metric)], ["observed", (a) => num(a.observed), "num"],
                     ["expected range", (a) => (a.lower === null || a.lower === undefined ? "-"
                       : `${num(a.lower)} .. ${num(a.upper)}`), "num"],
                     ["message", (a) => esc(a.message), "wrap"]], d.alerts)
          + table("action log", [["at (UTC)", (a) => esc(when(a.at))], ["rule", (a) => esc(a.rule)],
                  ["action", (a) => esc(a.action_type)], ["status", (a) => badge(a.status)],
                  ["why", (a) => esc(a.reason), "wrap"],
                  ["values", (a) => esc(JSON.stringify(a.signal_values || {})), "wrap"]], d.actions),
      };
    },
  };

  // ---------------------------------------------------------------------------------------------- refresh
  // An empty alerts panel is good news, not missing data.
  const EMPTY_PREFIX = {alerts: "all quiet"};

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
      latest[name] = {state: "error", message: `could not load: ${err.message}`};
      return;
    }
    latest[name] = data;
    if (data.state !== "ready") {
      draw(name, el, null);
      el.querySelector(".summary").innerHTML = "";
      el.querySelector(".table").innerHTML = "";
      el.querySelector(".empty").textContent = `${EMPTY_PREFIX[name] || "no data yet"}: ${data.message || ""}`;
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
      // The health strip is redrawn as each panel arrives: a slow panel (a plan being fitted) holds up only its
      // own tile.
      await Promise.all(panels.map((el) => refreshPanel(el).finally(renderHealth)));
    } finally {
      refreshing = false;
    }
    document.getElementById("updated").textContent = "updated " + new Date().toISOString().substring(11, 19) + " UTC";
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
