import pytest

from shopfloor.domain.catalog import Warehouse
from shopfloor.domain.errors import OutOfStock
from shopfloor.domain.orders import OrderStatus, check_transition
from shopfloor.domain.errors import InvalidTransition
from shopfloor.domain.stock import Allocation, OrderLineRequest as L, StockLevel as S, lock_order, plan_allocation

WH = {
    "west": Warehouse("west", "us-west", "US", ("9", "8")),
    "east": Warehouse("east", "us-east", "US", ("0", "1")),
    "eu": Warehouse("eu", "eu-central", "DE", ()),
}


def test_single_warehouse_that_ships_everything_beats_a_local_split():
    levels = [S("A", "west", 5, 0), S("B", "east", 5, 0), S("A", "east", 5, 0)]
    alloc = plan_allocation([L("A", 1), L("B", 1)], levels, WH, "US", "94107")
    assert {a.warehouse for a in alloc} == {"east"}


def test_the_local_warehouse_wins_when_several_can_ship_the_whole_order():
    levels = [S("A", "west", 5, 0), S("A", "east", 5, 0)]
    assert plan_allocation([L("A", 2)], levels, WH, "US", "94107") == [Allocation("A", "west", 2)]
    assert plan_allocation([L("A", 2)], levels, WH, "US", "10001") == [Allocation("A", "east", 2)]


def test_order_splits_only_when_no_single_warehouse_can_ship_it():
    levels = [S("A", "west", 3, 1), S("A", "east", 4, 0)]
    alloc = plan_allocation([L("A", 5)], levels, WH, "US", "94107")
    assert sum(a.qty for a in alloc) == 5
    assert alloc[0] == Allocation("A", "west", 2)  # local first, then the rest
    assert alloc[1] == Allocation("A", "east", 3)


def test_shortage_reports_every_short_sku_with_what_is_available():
    levels = [S("A", "west", 3, 2), S("B", "east", 9, 0)]
    with pytest.raises(OutOfStock) as err:
        plan_allocation([L("A", 2), L("B", 10)], levels, WH, "US", "94107")
    assert err.value.details == [
        {"sku": "A", "requested": 2, "available": 1},
        {"sku": "B", "requested": 10, "available": 9},
    ]


def test_repeated_skus_are_merged_before_allocation():
    levels = [S("A", "west", 3, 0)]
    assert plan_allocation([L("A", 1), L("A", 2)], levels, WH, "US", "94107") == [Allocation("A", "west", 3)]


def test_locks_are_taken_in_one_fixed_order():
    allocs = [Allocation("B", "a", 1), Allocation("A", "z", 1), Allocation("A", "b", 1)]
    assert [(a.sku, a.warehouse) for a in lock_order(allocs)] == [("A", "b"), ("A", "z"), ("B", "a")]


def test_warehouse_without_prefixes_serves_its_whole_country():
    assert WH["eu"].serves("DE", "10115")
    assert not WH["eu"].serves("US", "10115")


def test_order_status_machine_refuses_illegal_moves():
    assert check_transition("payment_pending", "authorized") is OrderStatus.AUTHORIZED
    with pytest.raises(InvalidTransition):
        check_transition("declined", "captured")


def test_a_reloaded_warehouse_mapping_is_ranked_afresh_for_a_destination_already_seen():
    levels = [S("A", "west", 5, 0), S("A", "east", 5, 0)]
    assert plan_allocation([L("A", 1)], levels, WH, "US", "94107") == [Allocation("A", "west", 1)]
    moved = {**WH, "west": Warehouse("west", "us-west", "US", ("7",)), "east": Warehouse("east", "us-east", "US",
                                                                                        ("94",))}
    assert plan_allocation([L("A", 1)], levels, moved, "US", "94107") == [Allocation("A", "east", 1)]


def test_a_warehouse_missing_from_the_mapping_still_ranks_after_the_known_local_one():
    levels = [S("A", "ghost", 5, 0), S("A", "west", 5, 0)]
    assert plan_allocation([L("A", 1)], levels, WH, "US", "94107") == [Allocation("A", "west", 1)]
