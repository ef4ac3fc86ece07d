"Consistency checks of the paper's reported numbers in papers/clip-fgdi/*.csv (tidy: one row per number)."
import math, re
from pathlib import Path
import pandas as pd
import pytest

HERE = Path(__file__).resolve().parents[1]/'papers'/'clip-fgdi'
COLUMNS = ['table', 'protocol', 'setting', 'method', 'target', 'metric', 'value', 'ci_low', 'ci_high', 'source', 'note']
KEY = ['table', 'protocol', 'setting', 'method', 'target', 'metric']
FILES = [f'table{i}.csv' for i in range(1, 9)] + ['released_log.csv']
PER_TARGET = {'PRID', 'GRID', 'VIPeR', 'iLIDS', 'Market1501', 'MSMT17', 'CUHK03'}
# (table, protocol, setting, method, metric) whose printed average is not the mean of its printed per-target values.
# Empty: every printed average agrees within rounding. Add an entry only with the paper's own inconsistency as reason.
AVERAGE_EXCEPTIONS = {}

def read(name):
    df = pd.read_csv(HERE/name, dtype=str, keep_default_na=False)
    for c in ('value', 'ci_low', 'ci_high'): df[c] = pd.to_numeric(df[c].where(df[c] != ''))
    return df

@pytest.fixture(scope='module')
def all_rows(): return pd.concat([read(f) for f in FILES], ignore_index=True)

@pytest.mark.parametrize('name', FILES)
def test_columns_and_values(name):
    df = read(name)
    assert list(df.columns) == COLUMNS, f'{name}: columns {list(df.columns)}'
    assert len(df) > 0 and df.value.map(math.isfinite).all(), f'{name}: empty or non-finite value'
    pct = df[df.metric != 'minutes']
    assert pct.value.between(0, 100).all(), f'{name}: percentages outside [0, 100]:\n{pct[~pct.value.between(0, 100)]}'
    assert set(df.metric) <= {'mAP', 'R1', 'R5', 'R10', 'minutes'}
    assert set(df.source) <= {'paper', 'readme-figure', 'released-log'}
    assert set(df.protocol) <= {'', '1', '2', '3'}

def test_no_duplicate_keys(all_rows):
    dup = all_rows[all_rows.duplicated(KEY, keep=False)]
    assert dup.empty, f'duplicate keys:\n{dup[KEY]}'

def test_ci_brackets_order(all_rows):
    ci = all_rows.dropna(subset=['ci_low', 'ci_high'])
    assert len(ci) == 6 and (ci.ci_low <= ci.ci_high).all()
    outside = ci[(ci.value < ci.ci_low) | (ci.value > ci.ci_high)]
    assert outside.method.tolist() == ['Ours'] and outside.value.tolist() == [75.5], outside  # Table I printed "73.8-74.4"
    assert outside.note.str.contains('does not contain its mean').all()

def average_groups(df):
    "Groups of one printed result over its targets (a source→target setting varies with the target, so it is dropped)."
    df = df.assign(setting=df.setting.where(~df.setting.str.contains('→|average over'), ''))
    return df.groupby(['table', 'protocol', 'setting', 'method', 'metric'])

def average_mismatches(df):
    "Rows (group, printed average, mean of per-target values) where they differ by more than rounding (0.15)."
    out = []
    for key, g in average_groups(df):
        avg, per = g[g.target == 'average'].value, g[g.target.isin(PER_TARGET)].value
        if len(avg) and len(per) > 1 and abs(avg.iloc[0] - per.mean()) > 0.15 and key not in AVERAGE_EXCEPTIONS:
            out.append((key, avg.iloc[0], round(per.mean(), 3)))
    return out

def test_averages_are_means(all_rows):
    assert average_mismatches(all_rows) == []
    checked = average_groups(all_rows).target.apply(lambda t: 'average' in set(t) and len(set(t) & PER_TARGET) > 1)
    assert checked.sum() == 20 + 46 + 28 + 12  # Tables I, II, VIII and the released log (mAP and R1 each)

def test_average_check_can_fail(all_rows):
    bad = all_rows.copy()
    cell = (bad.table == '8') & (bad.setting == 'apn=ed;beta=0.3') & (bad.target == 'PRID') & (bad.metric == 'mAP')
    bad.loc[cell, 'value'] += 1.0
    assert average_mismatches(bad) == [(('8', '1', 'apn=ed;beta=0.3', 'Ours', 'mAP'), 82.7, 82.925)]

def test_printed_gains(all_rows):
    "Tables V-VII print gains (↑x) over the baseline row: they must equal the difference of the printed values."
    gains = all_rows[all_rows.note.str.contains('printed gain')]
    assert len(gains) == 2 + 2 + 16
    for _, r in gains.iterrows():
        gain, base = re.search(r'printed gain ↑([\d.]+) over ([^;]+)', r.note).groups()
        b = all_rows[(all_rows.table == r.table) & (all_rows.setting == r.setting) & (all_rows.method == base)
                     & (all_rows.metric == r.metric)].value
        assert len(b) == 1 and abs(r.value - b.iloc[0] - float(gain)) < 0.05, (r.table, r.setting, r.metric)

def test_table1_ours_from_readme_figure():
    t1 = read('table1.csv')
    ours = t1[t1.method == 'Ours'].set_index(['target', 'metric']).value.to_dict()
    fig = dict(PRID=(80.1, 71.0), GRID=(75.1, 66.7), VIPeR=(81.9, 76.0), iLIDS=(91.8, 88.3), average=(82.2, 75.5))
    assert ours == {(t, m): v for t, (a, b) in fig.items() for m, v in (('mAP', a), ('R1', b))}
    assert set(t1[t1.method == 'Ours'].source) == {'readme-figure'}

def test_headline_agrees_across_tables(all_rows):
    "Protocol-1 headline: Table I Ours = Table IV Baseline+A+B; the baseline (CLIP-ReID) row is shared by Tables I, III, IV, VII."
    def one(**kw):
        sel = all_rows
        for k, v in kw.items(): sel = sel[sel[k] == v]
        assert len(sel) == 1, kw
        return sel.value.iloc[0]
    for m in ('mAP', 'R1'):
        assert one(table='1', method='Ours', target='average', metric=m) == one(table='4', protocol='1', method='Baseline+A+B', metric=m)
        base = one(table='1', method='CLIP-ReID', target='average', metric=m)
        assert base == one(table='3', method='baseline', metric=m) == one(table='4', protocol='1', method='Baseline', metric=m) \
               == one(table='7', setting='backbone=ViT-B-16', method='ViT-B-16', metric=m)
