from streams.core import kpis


def vec(**kw):
    v = [0.0] * kpis.WIDTH
    for name, value in kw.items():
        v[getattr(kpis, name.upper())] = value
    return v


def test_ratios_follow_spec_definitions():
    v = vec(answered=8, abandoned=4, short=1, in_threshold=6, wait_sum=80, handled=5, handle_sum=1000)
    assert kpis.abandon_ratio(v) == 3 / 11
    assert kpis.service_level(v) == 6 / 11
    assert kpis.asa(v) == 10.0
    assert kpis.aht(v) == 200.0


def test_survey_scores():
    v = vec(csat_n=4, csat_pos=3, nps_n=5, nps_promoters=3, nps_detractors=1, fcr_n=2, fcr_yes=1)
    assert kpis.csat(v) == 0.75
    assert kpis.nps(v) == 40.0
    assert kpis.fcr(v) == 0.5


def test_nothing_to_divide_by_is_absent_not_zero():
    empty = vec()
    for fn in (kpis.abandon_ratio, kpis.service_level, kpis.asa, kpis.aht, kpis.csat, kpis.nps, kpis.fcr):
        assert fn(empty) is None
    # only short abandons: the denominator is 0, so the ratio is undefined
    assert kpis.abandon_ratio(vec(abandoned=2, short=2)) is None
