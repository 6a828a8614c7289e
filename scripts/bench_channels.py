"""Cost of a composition with channels per take (issue 15): wall time per call, medians of 5.

Run: /work/venv/bin/python scripts/bench_channels.py (a short measurement; not a test)."""
import statistics
import time

from wsgen.engine.composite import create_composite
K=8
corr=[[0.7**abs(i-j) for j in range(K)] for i in range(K)]
specs = {
 "1 channel plain composition (sine+normal noise+level-shift)": {"interval":0.01,"base":{"kind":"sine","params":{}},"noise":{"std_dev":0.2},
     "anomalies":[{"kind":"level-shift","placement":{"mode":"gaps"}}]},
 "8 channels, shared sine, correlated noise, level-shift on s3": {"interval":0.01,"channels":"s1..s8","base":{"kind":"sine","params":{}},
     "noise":{"std_dev":0.2,"correlation":corr},"anomalies":[{"kind":"level-shift","channels":["s3"],"placement":{"mode":"gaps"}}]},
}
for name, spec in specs.items():
    for m, reps in ((1, 2000), (4096, 50)):
        res=[]
        for _ in range(5):
            g = create_composite(spec, seed=1); g.take(10)
            t=time.perf_counter()
            for _ in range(reps): g.take(m)
            res.append((time.perf_counter()-t)/reps)
        med=statistics.median(res)
        print(f"{name}: take({m}) {med*1e6:.1f} us/call, {m/med/1e6:.2f} M samples/s ({m*(K if 'channels' in spec else 1)/med/1e6:.2f} M values/s)")
t=time.perf_counter(); create_composite(specs["8 channels, shared sine, correlated noise, level-shift on s3"], seed=1, start_seq=1_000_000); print(f"8 channels start_seq=1e6 seek: {time.perf_counter()-t:.3f} s")
