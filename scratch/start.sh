#!/bin/bash
# start a server: ws port picked by kernel, http port given; logs to scratch/server.log
cd "$(dirname "$0")/.."
HP=${1:-18731}
PYTHONPATH=$PWD nohup /work/venv/bin/python -m wsgen.cli serve --host 127.0.0.1 --port 0 --http-port $HP \
  --ping-interval 2 --ping-timeout 2 --write-timeout 4 --log-level info > scratch/server.log 2>&1 &
echo $! > scratch/server.pid
sleep 2; cat scratch/server.log
