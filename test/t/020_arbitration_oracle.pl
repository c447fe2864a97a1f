# Oracle test of batch arbitration (test/oracle/arbitration_oracle.py): generated campaign
# instances solved by kaireon.run_campaign and, as LP relaxations, by GLPK's glpsol; every
# constraint holds for kaireon's assignment, its value is within 1% of the LP optimum and its
# dual bound is at least that optimum; on degenerate instances the value is within 0.01% of the
# integer optimum (scipy HiGHS MILP). Needs Debian's glpk-utils, python3-numpy, python3-scipy and
# python3-psycopg2, run with /usr/bin/python3.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use KaireonOracle;
use Test::More;

run_oracle('arbitration_oracle', 'test/oracle/arbitration_oracle.py', 60);
done_testing();
