"""Bot patterns: many addresses behind one card, many addresses refused on one product."""

from __future__ import annotations

from shopfloor.waitroom import BotPatternDetector, card_fingerprint


def test_one_card_from_many_addresses_is_reported_once_per_cooldown():
    d = BotPatternDetector(window_s=60, card_addresses=5, product_addresses=50, cooldown_s=300)
    found = [d.observe(float(i), f"10.0.0.{i}", "tok_stolen", ["HOT"], refused=False) for i in range(8)]
    assert [len(f) for f in found] == [0, 0, 0, 0, 1, 0, 0, 0]
    pattern = found[4][0]
    assert (pattern.kind, pattern.key, pattern.addresses) == ("one_card", card_fingerprint("tok_stolen"), 5)
    assert "tok_stolen" not in pattern.message()  # the card is named by its hash only
    assert d.observe(400.0, "10.0.0.99", "tok_stolen", ["HOT"], refused=False) == []  # the old ones left the window


def test_one_card_from_one_address_many_times_is_not_a_pattern():
    d = BotPatternDetector(window_s=60, card_addresses=3, product_addresses=50)
    assert all(d.observe(float(i), "10.0.0.1", "tok_mine", ["HOT"], refused=False) == [] for i in range(50))


def test_addresses_spread_over_time_beyond_the_window_do_not_add_up():
    d = BotPatternDetector(window_s=10, card_addresses=3, product_addresses=50)
    assert all(d.observe(i * 20.0, f"a{i}", "tok", ["HOT"], refused=False) == [] for i in range(10))


def test_many_refused_addresses_on_one_product_are_a_pattern_and_served_ones_are_not():
    d = BotPatternDetector(window_s=60, card_addresses=100, product_addresses=4)
    served = [d.observe(1.0, f"s{i}", f"tok{i}", ["HOT"], refused=False) for i in range(20)]
    assert all(f == [] for f in served)
    refused = [d.observe(2.0, f"r{i}", f"tokr{i}", ["HOT", "HOT"], refused=True) for i in range(4)]
    assert [len(f) for f in refused] == [0, 0, 0, 1]
    assert (refused[3][0].kind, refused[3][0].key) == ("one_product", "HOT")
