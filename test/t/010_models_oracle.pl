# Oracle tests of the scoring models (test/oracle/models_oracle.py): XGBoost and LightGBM
# imports score exactly as the libraries predict, TreeSHAP matches XGBoost's pred_contribs,
# in-database logistic regression matches scikit-learn, and the online_learner matches
# SGDClassifier.partial_fit on one ordered stream for each learning-rate schedule. Needs
# Debian's python3-xgboost, python3-sklearn, python3-numpy and python3-psycopg2, run with
# /usr/bin/python3.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use KaireonOracle;
use Test::More;

run_oracle('oracle', 'test/oracle/models_oracle.py', 31);
done_testing();
