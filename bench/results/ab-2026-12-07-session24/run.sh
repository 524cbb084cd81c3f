#!/bin/bash
cd /work/main
O=/work/bin/capstan-old; N=/work/bin/capstan-new; R=/work/ab/final
d() { BENCH_CASES=a BENCH_PEOPLE=$1 BENCH_CAPSTAN=$2 BENCH_LABEL=$3 BENCH_OUT=$R/d-$1-$4-$3.md bash bench/delivery.sh > $R/d-$1-$4-$3.log 2>&1; }
for i in 1 2 3 4; do
  if (( i % 2 )); then d returning $O old $i; d returning $N new $i; else d returning $N new $i; d returning $O old $i; fi
done
d new $N new 1; d new $O old 1; d new $O old 2; d new $N new 2
BENCH_CAPSTAN=$O BENCH_LABEL=old BENCH_TARGETS="null always" BENCH_OUT=$R/i-1-old.md bash bench/ingest.sh > $R/i-1-old.log 2>&1
BENCH_CAPSTAN=$N BENCH_LABEL=new BENCH_TARGETS="null always" BENCH_OUT=$R/i-1-new.md bash bench/ingest.sh > $R/i-1-new.log 2>&1
BENCH_CAPSTAN=$N BENCH_LABEL=new BENCH_CAPSTAN_B=$O BENCH_LABEL_B=old BENCH_ROUNDS=2 BENCH_OUT=$R/lat-1.md bash bench/latency.sh > $R/lat-1.log 2>&1
echo done
