# Oracle test of the adaptive model (test/oracle/adaptive_oracle.py): on a stream of 200,000
# responses learned through kaireon.model_learn, its AUC is within 0.02 of scikit-learn's
# best-binned naive Bayes, the two informative predictors rank first by AUC, and the
# calibration error over deciles is at most 0.02. Needs Debian's python3-sklearn,
# python3-numpy and python3-psycopg2, run with /usr/bin/python3.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use KaireonOracle;
use Test::More;

run_oracle('adaptive', 'test/oracle/adaptive_oracle.py', 9);
done_testing();
