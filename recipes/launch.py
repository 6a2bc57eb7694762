"""Run an entry point as several processes of one run on this host (JAX over several processes).

    python recipes/launch.py --num-processes 2 --cpu-devices 2 -- recipes/pretrain.py --backend jax --data-parallel

Starts N processes of the command after `--`, each with Keras' variables (KERAS_DISTRIBUTION_JOB_ADDRESSES: a
coordinator on 127.0.0.1 and a free port, KERAS_DISTRIBUTION_NUM_PROCESSES, KERAS_DISTRIBUTION_PROCESS_ID), forwards
Ctrl-C and SIGTERM to them, and exits with the first failure's code after stopping the others (0 when all succeed).
On a cluster, the cluster's launcher sets the same variables on each host instead (see the README). The logic lives in
`kbert.training.launch`.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from recipes.flags import add_debug_flag, new_parser, run  # noqa: E402 (Keras-free)


def parse_args(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    own, command = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    parser = new_parser(__doc__)
    parser.add_argument("--num-processes", type=int, required=True, help="processes to start (>= 1).")
    parser.add_argument(
        "--cpu-devices", type=int, help="CPU devices per process (JAX_NUM_CPU_DEVICES), for runs on CPUs."
    )
    add_debug_flag(parser)
    args = parser.parse_args(own)
    args.command = command
    return args


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("KERAS_BACKEND", "jax")

    def work():
        from kbert.training.launch import launch

        return launch(args.command, args.num_processes, args.cpu_devices)

    return run(args, work)


if __name__ == "__main__":
    sys.exit(main())
