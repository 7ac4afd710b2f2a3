from jobs import keys


def test_every_key_and_channel_is_under_the_one_prefix():
    names = [
        keys.channel_for("j1"),
        keys.stop_key("j1"),
        keys.idempotency_key("k"),
        keys.durations_key(),
        keys.lost_job_lock_key(),
        keys.replication_probe_channel(),
        keys.log_key("j1"),
        keys.log_channel_for("j1"),
        keys.token_key("d1"),
        keys.token_index_key(),
        keys.token_last_used_key(),
        keys.rate_limit_prefix(),
        keys.wake_channel("high"),
        keys.stranded_seen_key("high"),
    ]
    assert all(name.startswith(f"{keys.PREFIX}:") for name in names)
    assert len(set(names)) == len(names)


def test_idempotency_key_hides_the_callers_text():
    assert "order 17" not in keys.idempotency_key("order 17")
    assert keys.idempotency_key("order 17") == keys.idempotency_key("order 17") != keys.idempotency_key("x")
