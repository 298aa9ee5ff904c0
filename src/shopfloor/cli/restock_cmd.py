"""`shopfloor restock` commands: plan, agent, import-pos, backtest."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import typer

from ..validation import not_a_file
from .output import console, err_console, fail, open_store, print_json

restock_app = typer.Typer(help="Restock planning: what to reorder, where and when; sell-out risks.", no_args_is_help=True)


def _container():
    return open_store()


@restock_app.command("plan")
def plan_cmd(
    as_json: bool = typer.Option(False, "--json", help="Print the full plan (lines and sell-out risks) as JSON."),
    as_csv: bool = typer.Option(False, "--csv", help="Print one CSV row per SKU x warehouse."),
    sku: str = typer.Option(None, "--sku", help="Only this SKU."),
    warehouse: str = typer.Option(None, "--warehouse", help="Only this warehouse."),
    top: int = typer.Option(10, "--top", min=1, help="Rows per table in the human-readable output."),
    fill_rate: float = typer.Option(None, "--fill-rate", help="Fill-rate target for every SKU (units sold / units "
                                    "demanded, e.g. 0.95); default: each policy's fill_rate."),
) -> None:
    """Build today's restock plan from the store.

    Reads stock, open purchase orders and order history from SHOPFLOOR_DATABASE_URL.
    """
    if as_json and as_csv:
        fail("choose one of --json and --csv")
    if fill_rate is not None:
        from ..planning.restock import check_fill_rate

        try:
            check_fill_rate(fill_rate)
        except ValueError as exc:
            fail(f"--fill-rate: {exc}")
    from sqlalchemy.exc import SQLAlchemyError

    from ..bootstrap import build_restock_planner

    container = _container()
    try:
        plan = build_restock_planner(container).plan(sku=sku, warehouse=warehouse, fill_rate=fill_rate)
    except ValueError as exc:
        fail(f"restock_policy_file: {exc}")
    except SQLAlchemyError as exc:
        fail(f"database_url: cannot read the store ({type(exc).__name__}); run `shopfloor db upgrade` first?")
    finally:
        container.close()
    if as_json:
        print_json(plan.to_dict())
        return
    if as_csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=list(plan.CSV_COLUMNS))
        writer.writeheader()
        writer.writerows(plan.csv_rows())
        return
    print_plan_summary(plan, top=top)


@restock_app.command("agent")
def agent_cmd(
    fill_rate: float = typer.Option(None, "--fill-rate", help="Portfolio fill-rate target (units sold / demanded); "
                                    "default 0.95."),
    lead_time: int = typer.Option(None, "--lead-time", min=0, max=365,
                                  help="Days from an order to its arrival; default 7."),
    review_days: int = typer.Option(None, "--review-days", min=1, max=365,
                                    help="Days between orders; default 1 (daily)."),
    policy: Path = typer.Option(None, "--policy", help="Policy file (TOML/YAML/JSON); its [defaults] fill_rate, "
                                "lead_time_days, review_days, order_cap, moq and pack_size apply unless given "
                                "as options."),
) -> None:
    """Replenishment agent: one JSON line per store day on stdin, one JSON line of orders on stdout.

    In: {"date", "sales": {sku: units}, "on_hand": {sku: n}, "on_order": {sku: n}, "catalog": {sku: {...}}} (the
    first line may add "history": [{"date", "sku", "units"}]). Out: {"orders": {sku: qty}} for orders placed at the
    end of that day, or {"error": {"field", "message"}} for a line it cannot use (it keeps going). Negative sales
    are returns (read as 0); negative history rows net against their SKU's units that day (a cancelled order is no
    demand); fractional units (goods sold by weight) are read in whole units of the SKU's measure,
    rounded on the running total.
    """
    from dataclasses import replace

    from ..planning.restock import PolicyBook, check_fill_rate
    from ..planning.restock_agent import MAX_HISTORY_DAYS, ReplenishmentAgent

    try:
        book = PolicyBook.load(policy) if policy is not None else PolicyBook()
        d = book.defaults if policy is not None else None
    except ValueError as exc:
        fail(f"--policy: {exc}")
    if d is None:
        d = replace(PolicyBook().defaults, fill_rate=0.95)
    fill_rate = d.fill_rate_target if fill_rate is None else fill_rate
    lead_time = d.lead_time_days if lead_time is None else lead_time
    review_days = d.review_days if review_days is None else review_days
    moq, pack = d.moq, d.pack_size
    tuning = replace(book.engine_tuning(), order_cap=d.order_cap)
    try:
        check_fill_rate(fill_rate)
    except ValueError as exc:
        fail(f"--fill-rate: {exc}")
    agent = ReplenishmentAgent(fill_rate=fill_rate, lead_time=lead_time, review_days=review_days, tuning=tuning,
                               moq=moq, pack_size=pack)
    out = sys.stdout
    told = 0
    told_fractions = told_too_old = False
    for line in sys.stdin:
        if not line.strip():
            continue
        out.write(json.dumps(agent.handle_line(line), separators=(",", ":")) + "\n")
        out.flush()
        if agent.history_rows_too_old and not told_too_old:
            err_console.print(f"restock agent: {agent.history_rows_too_old} history row(s) dated more than "
                              f"{MAX_HISTORY_DAYS} days before the first day were not read",
                              soft_wrap=True, highlight=False)
            told_too_old = True
        if agent.fractional_skus and not told_fractions:
            err_console.print(f"restock agent: fractional units on {agent.fractional_skus} SKU(s): demand is read "
                              "in whole units of each SKU's measure, rounded on its running total; orders are "
                              "whole units", soft_wrap=True, highlight=False)
            told_fractions = True
        returns = agent.returns_read_as_zero + agent.history_return_rows
        if returns and not told:
            err_console.print(f"restock agent: negative units are cancellations and returns, not demand: "
                              f"{agent.history_return_rows} history rows netted against their SKU's units that day, "
                              f"{agent.returns_read_as_zero} day sales read as 0 so far",
                              soft_wrap=True, highlight=False)
            told = returns
    if agent.returns_read_as_zero + agent.history_return_rows > told:
        err_console.print(f"restock agent: {agent.history_return_rows} history rows with negative units netted "
                          f"against their SKU's units that day, {agent.returns_read_as_zero} negative day sales "
                          f"read as 0 (returns)", soft_wrap=True, highlight=False)


# Short names for the sell-out actions in the terminal table (the JSON and CSV keep the full ones).
ACTION_LABELS = {"suppress_promotion": "no promo", "offer_alternatives": "offer alts", "place_order": "order now"}


def print_plan_summary(plan, top: int = 10) -> None:
    """Rich tables: top restock actions (by urgency, then units) and the sell-out risks."""
    from rich.table import Table

    from rich import box

    actions = sorted((ln for ln in plan.lines if ln.order_qty > 0), key=lambda x: (not x.urgent, -x.order_qty))
    # Both tables fit an 80-column terminal without folding an id or a date: short headers, no outer edge, and
    # the list columns one entry per line. `--json` / `--csv` carry every field under its full name.
    compact = {"box": box.SIMPLE_HEAD, "show_edge": False, "pad_edge": False}
    t = Table(title=f"Restock actions as of {plan.as_of} ({len(actions)} orders)", **compact)
    for col, just in (("sku", "left"), ("warehouse", "left"), ("position", "right"), ("reorder", "right"),
                      ("up to", "right"), ("order", "right"), ("stockout", "left"), ("urgent", "left")):
        t.add_column(col, justify=just, no_wrap=True)
    for ln in actions[:top]:
        t.add_row(ln.sku, ln.warehouse, str(ln.inventory_position), str(ln.reorder_point), str(ln.order_up_to),
                  str(ln.order_qty), str(ln.projected_stockout_date or "-"), "yes" if ln.urgent else "")
    console.print(t)
    r = Table(title=f"Sell-out risks ({len(plan.risks)})", show_lines=True, **compact)
    for col, just in (("sku", "left"), ("warehouse", "left"), ("avail", "right"), ("P(out)", "right"),
                      ("restocked", "left"), ("actions", "left"), ("instead", "left")):
        r.add_column(col, justify=just, no_wrap=col not in ("actions", "instead"), overflow="fold")
    for risk in plan.risks[:top]:
        r.add_row(risk.sku, risk.warehouse, str(risk.available), f"{risk.stockout_probability:.0%}",
                  str(risk.next_replenishment), "\n".join(ACTION_LABELS.get(a, a) for a in risk.actions),
                  "\n".join(a.sku for a in risk.alternatives) or "-")
    console.print(r)


def show_restock_summary(container, top: int = 5) -> None:
    """For ``shopfloor demo``: print the top restock actions and sell-out risks of the container's store."""
    from ..bootstrap import build_restock_planner

    print_plan_summary(build_restock_planner(container).plan(), top=top)


@restock_app.command("import-pos")
def import_pos_cmd(
    file: Path = typer.Argument(..., help="CSV with header po_id,sku,warehouse,qty,expected_at[,status][,supplier]."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Load purchase orders from a CSV file (all rows or none).

    Creates new purchase orders and updates open ones; every row is checked (qty 1 to 10,000,000, expected_at in
    years 2000 to 2199, as the API allows) before anything is written.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from ..domain.errors import DomainError
    from ..planning.purchase_orders import parse_purchase_orders_csv
    from ..store.restock import RestockRepository

    if not file.is_file():
        fail(f"FILE: {file} {not_a_file(file)}")
    try:
        pos = parse_purchase_orders_csv(file.read_text(encoding="utf-8-sig"))
    except DomainError as exc:
        fail(f"{file.name}: {exc.message}")
    except UnicodeDecodeError:
        fail(f"{file.name}: not a UTF-8 text file")
    container = _container()
    try:
        stored = RestockRepository(container.engine).upsert_purchase_orders(pos, container.clock.now())
    except DomainError as exc:
        fail(f"{file.name}: {exc.message}")
    except SQLAlchemyError as exc:
        fail(f"database_url: cannot write purchase orders ({type(exc).__name__}); run `shopfloor db upgrade` first?")
    finally:
        container.close()
    created = sum(1 for _, c in stored if c)
    result = {"imported": len(stored), "created": created, "updated": len(stored) - created}
    if as_json:
        print_json(result)
    else:
        console.print(f"[green]imported {result['imported']} purchase orders[/] ({created} new, {result['updated']} updated)")


def _parse_levels(text: str) -> list[float]:
    try:
        levels = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        fail(f"--fill-rates: {text!r} is not a comma-separated list of numbers")
    if not levels or any(not 0.5 <= x < 1 for x in levels):
        fail("--fill-rates: each target must be in [0.5, 1)")
    return levels


@restock_app.command("backtest")
def backtest_cmd(
    history: Path = typer.Option(..., "--history", help="Long demand file: unique_id,ds,y or M5 long (item_id,store_id,date,value); CSV(.gz) or Parquet."),
    fill_rates: str = typer.Option("0.90,0.95,0.98", "--fill-rates", "--service-levels",
                                   help="Comma-separated fill-rate targets."),
    lead_time: int = typer.Option(7, "--lead-time", min=0, max=365, help="Supplier lead time in days."),
    review_days: int = typer.Option(1, "--review-days", min=1, max=365, help="Days between reviews (1 = daily)."),
    test_days: int = typer.Option(364, "--test-days", min=28, help="Scored days at the end of the history."),
    warmup_days: int = typer.Option(28, "--warmup-days", min=0, help="Simulated but unscored days before them."),
    end_offset: int = typer.Option(0, "--end-offset", min=0, help="Drop this many days from the end first (scores "
                                   "an earlier window)."),
    order_cap: float = typer.Option(None, "--order-cap", help="Capped-base-stock factor: one order is at most this "
                                    "x the level's rate per review period (0 = no cap; default 1.25)."),
    as_json: bool = typer.Option(False, "--json", help="Print the full result as JSON."),
) -> None:
    """Backtest the restock agent against a safety-stock formula.

    Lost-sales simulation of the shipped agent (sees sales, not demand) vs MA + z*sigma*sqrt(L+R) at equal fill.
    Two baselines, z bisected to the agent's fill: one fed the true demand (stricter; no store sees it) and one fed
    units sold (the information the agent has). A ratio is agent / baseline average on-hand; "unreachable" when no
    z in [-1, 6] reaches the agent's fill.
    """
    from dataclasses import replace

    from rich.progress import Progress

    from ..planning.restock import check_order_cap
    from ..planning.restock_backtest import DemandPanel, load_demand_panel, run_restock_backtest
    from ..planning.restock_engine import EngineTuning

    levels = _parse_levels(fill_rates)
    tuning = EngineTuning()
    if order_cap is not None:
        try:
            tuning = replace(tuning, order_cap=check_order_cap(order_cap))
        except ValueError as exc:
            fail(f"--order-cap: {exc}")
    try:
        panel = load_demand_panel(history)
    except ValueError as exc:
        fail(f"--history: {exc}")
    if end_offset:
        if end_offset >= len(panel.dates):
            fail(f"--end-offset: {end_offset} is not shorter than the history ({len(panel.dates)} days)")
        panel = DemandPanel(panel.ids, panel.dates[:-end_offset], panel.demand[:, :-end_offset])
    with Progress(transient=True, console=console if not as_json else None, disable=as_json) as prog:
        task = prog.add_task("simulating", total=len(levels))
        try:
            result = run_restock_backtest(
                panel, service_levels=levels, lead_time=lead_time, review_days=review_days, test_days=test_days,
                warmup_days=warmup_days, tuning=tuning,
                progress=lambda msg: prog.update(task, advance=1, description=msg),
            )
        except ValueError as exc:
            fail(f"--history: {exc}" if "history" in str(exc) else str(exc))
    if as_json:
        print_json(result)
        return
    print_backtest_table(result)


def print_backtest_table(result: dict) -> None:
    """The backtest as a table that reads whole at 80 columns: one row per figure, one column per fill-rate target
    (labels wrap between words, values never wrap); fill ranges and near misses go below it as notes."""
    from rich.table import Table

    from rich import box

    targets = result["targets"]
    t = Table(title=f"Restock backtest ({result['data']['series']} series, {result['data']['scored_days']} scored "
                    "days)", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    t.add_column("fill-rate target", justify="left", min_width=12)  # "sales-fed" and "baseline" stay whole
    for r in targets:
        t.add_column(f"{r['target']:.2f}", justify="right", no_wrap=True)
    notes: list[str] = []

    def at_equal(r: dict, key: str, name: str) -> str:
        eq = r[key]
        if not eq["reachable"]:
            lo, hi = eq["fill_range"]
            notes.append(f"unreachable at {r['target']:.2f}: no z in [-1, 6] gives the {name} the agent's fill "
                         f"{r['ours']['fill_rate']:.4f} (its fill spans {lo:.4f}..{hi:.4f})")
            return "unreachable"
        if not eq["matched"]:
            notes.append(f"* at {r['target']:.2f}: no z gives the {name} exactly the agent's fill; the nearest is "
                         f"{eq['fill_rate']:.4f}")
            return f"{eq['avg_on_hand']:.2f}*"
        return f"{eq['avg_on_hand']:.2f}"

    def ratio(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    rows = (
        ("agent fill rate", [f"{r['ours']['fill_rate']:.4f}" for r in targets]),
        ("agent on-hand", [f"{r['ours']['avg_on_hand']:.2f}" for r in targets]),
        ("baseline fill @ target z", [f"{r['baseline_at_target_z']['fill_rate']:.4f}" for r in targets]),
        ("baseline on-hand @ target z", [f"{r['baseline_at_target_z']['avg_on_hand']:.2f}" for r in targets]),
        ("baseline on-hand @ agent fill", [at_equal(r, "baseline_at_equal_fill", "baseline") for r in targets]),
        ("ratio vs baseline", [ratio(r["inventory_ratio_vs_baseline"]) for r in targets]),
        ("sales-fed baseline on-hand @ agent fill",
         [at_equal(r, "sales_baseline_at_equal_fill", "sales-fed baseline") for r in targets]),
        ("ratio vs sales-fed", [ratio(r["inventory_ratio_vs_sales_baseline"]) for r in targets]),
    )
    for label, values in rows:
        t.add_row(label, *values)
    console.print(t)
    for note in notes:
        console.print(note, highlight=False)
    console.print("ratio = agent / baseline average on-hand at equal fill. baseline: the formula fed the true "
                  "demand (demand-fed; stricter). sales-fed baseline: the same formula fed units sold, the "
                  "information the agent has.")
    console.print(json.dumps({"runtime_s": result["runtime_s"]}))


def register(app: typer.Typer) -> None:
    """Attach ``shopfloor restock ...`` to the root app."""
    app.add_typer(restock_app, name="restock")
