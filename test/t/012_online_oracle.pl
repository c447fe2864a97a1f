# Oracle test of the online_learner model (test/oracle/online_oracle.py): an ordered stream of
# outcomes learned through kaireon.model_learn (respond's code path) gives the coefficients and
# scores of scikit-learn's SGDClassifier.partial_fit on the same stream, for each learning-rate
# schedule. Needs Debian's python3-sklearn, python3-numpy and python3-psycopg2, run with
# /usr/bin/python3.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use KaireonOracle;
use Test::More;

run_oracle('online', 'test/oracle/online_oracle.py', 15);
done_testing();
