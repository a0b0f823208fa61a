"""The command line both ORM applications of the corpus take.

    --port P --database D --phase schema|workload [--rounds N]
"""

import argparse


def arguments():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--phase", choices=["schema", "workload"], required=True)
    parser.add_argument("--rounds", type=int, default=20)
    return parser.parse_args()
