# Oracle test of the joint assignment of a flow graph's group node (test/oracle/assign_oracle.py):
# random instances solved by kaireon_internal._assign and by scipy's linear_sum_assignment; the
# same number of filled slots and the same total. Needs Debian's python3-numpy, python3-scipy
# and python3-psycopg2, run with /usr/bin/python3.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use KaireonOracle;
use Test::More;

run_oracle('assign_oracle', 'test/oracle/assign_oracle.py', 181);
done_testing();
