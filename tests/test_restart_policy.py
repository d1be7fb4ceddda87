from supervisor.policy import RestartPolicy, RestartType


class FakeClock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_intensity_limit_within_window_then_window_slides():
    clock = FakeClock()
    p = RestartPolicy(max_restarts=3, within_s=10, backoff_initial_s=0.5, backoff_max_s=4,
                      jitter=0, clock=clock)
    delays = []
    for _ in range(3):
        assert p.should_restart(RestartType.PERMANENT)
        delays.append(p.record_restart())
        clock.t += 1
    assert delays == [0.5, 1.0, 2.0]          # exponential backoff
    assert not p.should_restart(RestartType.PERMANENT)  # 3 restarts in 10 s: give up
    clock.t += 10                              # the window slides past the old restarts
    assert p.should_restart(RestartType.PERMANENT)
    assert p.record_restart() == 0.5           # backoff resets with the window


def test_backoff_is_capped_and_jittered():
    clock = FakeClock()
    p = RestartPolicy(max_restarts=100, within_s=1000, backoff_initial_s=1, backoff_max_s=5,
                      jitter=0.2, clock=clock)
    delays = [p.record_restart() for _ in range(10)]
    assert all(0.8 <= d <= 6.0 for d in delays)
    assert max(delays[5:]) <= 5 * 1.2


def test_restart_types():
    p = RestartPolicy(max_restarts=1)
    assert not p.should_restart(RestartType.TEMPORARY)
    assert not p.should_restart(RestartType.TRANSIENT, abnormal=False)
    assert p.should_restart(RestartType.TRANSIENT, abnormal=True)
