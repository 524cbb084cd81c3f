#!/bin/bash
cd /work/main
O=/work/bin/capstan-old; N=/work/bin/capstan-new; R=/work/ab/final
d() { BENCH_CASES=a BENCH_PEOPLE=$1 BENCH_CAPSTAN=$2 BENCH_LABEL=$3 BENCH_OUT=$R/d-$1-$4-$3.md bash bench/delivery.sh > $R/d-$1-$4-$3.log 2>&1; }
d returning $O old 5; d returning $N new 5
go test -c -o /work/bin/inproc-new.test ./bench/inproc
cd $(mktemp -d) && for i in 1 2 3; do /work/bin/inproc-new.test -test.run '^$' -test.bench 'EngineFloor/(store|storeread)$' -test.benchtime 3000x; done > $R/floor.txt 2>&1
echo done
