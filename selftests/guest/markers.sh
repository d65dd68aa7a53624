# SPDX-License-Identifier: GPL-2.0
# Sourced by run_tests.sh, demo.sh and bench.sh.  marked NAME CMD... runs CMD
# between the markers the host (scripts/tap-summary.py) reads:
#   # tlbrace-suite: NAME      then CMD's output
#   # tlbrace-exit: NAME RC    its exit status
# and returns that status.
marked() {
	_name=$1
	shift
	echo "# tlbrace-suite: $_name"
	"$@"
	_rc=$?
	echo "# tlbrace-exit: $_name $_rc"
	return $_rc
}
