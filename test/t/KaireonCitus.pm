# KaireonCitus: a Citus cluster for the TAP tests of kaireon on Citus (docs/scale-out.md).
# citus_installed says whether the citus library is there (the tests skip otherwise);
# start_cluster starts a coordinator and workers with kaireon on each, the workers added;
# load_tenant loads the demo tenant (test/fixtures/demo_tenant.sql) under another id;
# worker_of and move_tenant find and move the shard group holding a tenant.
package KaireonCitus;

use strict;
use warnings;
use Exporter 'import';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use File::Basename qw(dirname);
use IPC::Run;

our @EXPORT = qw(citus_installed pkglibdir start_cluster start_single load_tenant worker_of
  move_tenant place_apart node_by_port census same_rows run_clients client_errors record_fields);

# The server's library directory (pg_config --pkglibdir).
sub pkglibdir
{
	my $dir = `pg_config --pkglibdir`;
	chomp $dir;
	return $dir;
}

# Whether citus.so is installed next to the server's other libraries.
sub citus_installed
{
	return -f pkglibdir() . '/citus.so';
}

# A node with kaireon (and citus when $citus) preloaded, started, the extensions created (a
# Citus node connects to itself, as in a shard move, by its socket directory).
sub _node
{
	my ($name, $citus) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(allows_streaming => 'logical');
	$node->append_conf('postgresql.conf', ($citus ? q{
shared_preload_libraries = 'citus,kaireon'
citus.shard_count = 8
max_prepared_transactions = 100
citus.local_hostname = '} . $node->host . q{'
} : q{
shared_preload_libraries = 'kaireon'
}) . q{
max_connections = 200
max_worker_processes = 32
max_replication_slots = 10
max_wal_senders = 10
});
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION citus') if $citus;
	$node->safe_psql('postgres', 'CREATE EXTENSION kaireon');
	return $node;
}

# A coordinator and $nworkers workers (Citus connects to each by its socket directory and port).
sub start_cluster
{
	my ($name, $nworkers) = @_;
	my $coord = _node("${name}_coord", 1);
	my @workers = map { _node("${name}_w$_", 1) } 1 .. $nworkers;
	$coord->safe_psql('postgres',
		sprintf("SELECT citus_set_coordinator_host('%s', %d)", $coord->host, $coord->port));
	for my $w (@workers)
	{
		$coord->safe_psql('postgres', sprintf("SELECT citus_add_node('%s', %d)", $w->host, $w->port));
	}
	return ($coord, @workers);
}

# One plain node with kaireon only (what the cluster's answers are compared with).
sub start_single
{
	my ($name) = @_;
	return _node($name, 0);
}

# Loads the demo tenant with every "acme" (id, slug, name, schema kaireon_t_acme) made $tenant.
sub load_tenant
{
	my ($node, $tenant) = @_;
	my $file = dirname(__FILE__) . '/../fixtures/demo_tenant.sql';
	my $sql = slurp_file($file);
	$sql =~ s/acme/$tenant/g;
	$sql =~ s/Acme/\u$tenant/g;
	return $node->psql('postgres', $sql, on_error_stop => 1);
}

# The port of the worker holding the tenant's shard group.
sub worker_of
{
	my ($coord, $tenant) = @_;
	return $coord->safe_psql('postgres', qq{
    SELECT n.nodeport FROM pg_dist_placement p JOIN pg_dist_node n ON n.groupid = p.groupid
     WHERE p.shardid = get_shard_id_for_distribution_column('kaireon.tenants', '$tenant')});
}

# The node of @nodes listening on $port.
sub node_by_port
{
	my ($port, @nodes) = @_;
	my ($node) = grep { $_->port == $port } @nodes;
	return $node;
}

# Moves the tenant's shard group (every co-located shard) to $to (a node); returns psql's
# exit code, output and errors. Orphaned shards of an earlier move (Citus drops them later, in
# the background) are dropped first: a move back to their node fails while they are there.
sub move_tenant
{
	my ($coord, $tenant, $to) = @_;
	my ($stdout, $stderr, $ret);
	# The shards an earlier move left behind are dropped by the cleanup only once nothing holds
	# a lock on them (a worker's background job reading the tenant, say); until then the move
	# refuses ("orphaned shard ... could not be cleaned up"): tried again, up to ten seconds.
	for my $try (1 .. 20)
	{
		$ret = $coord->psql('postgres', sprintf(q{
    CALL pg_catalog.citus_cleanup_orphaned_resources();
    SELECT citus_move_shard_placement(p.shardid, n.nodename, n.nodeport, '%s', %d, shard_transfer_mode => 'block_writes')
      FROM pg_dist_placement p JOIN pg_dist_node n ON n.groupid = p.groupid
     WHERE p.shardid = get_shard_id_for_distribution_column('kaireon.tenants', '%s')},
			$to->host, $to->port, $tenant), stdout => \$stdout, stderr => \$stderr);
		last unless $ret != 0 && $stderr =~ /orphaned shard .* could not be cleaned up/;
		select(undef, undef, undef, 0.5);
	}
	return ($ret, $stdout, $stderr);
}

# Puts two tenants on different workers (moving the second when they share one).
sub place_apart
{
	my ($coord, $a, $b, @workers) = @_;
	my $wa = worker_of($coord, $a);
	return if worker_of($coord, $b) != $wa;
	my ($other) = grep { $_->port != $wa } @workers;
	my ($ret, $out, $err) = move_tenant($coord, $b, $other);
	die "moving tenant $b failed: $err" if $ret != 0;
}

# The rows of every kaireon and tenant data table (partitioned tables with their partitions),
# one "schema.table=n" line each, read through $node (on a coordinator: from the shards).
sub census
{
	my ($node) = @_;
	return $node->safe_psql('postgres', q{
    SELECT string_agg(format('%s.%s=%s', n.nspname, c.relname,
               (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %I.%I', n.nspname, c.relname), false, true, '')))[1]::text),
           E'\n' ORDER BY n.nspname, c.relname)
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE (n.nspname = 'kaireon' OR n.nspname LIKE 'kaireon\_t\_%') AND c.relkind IN ('r', 'p') AND NOT c.relispartition});
}

# Passes when two censuses are equal; the tables whose counts differ are named otherwise.
sub same_rows
{
	my ($got, $want, $name) = @_;
	my %w = map { split /=/ } split /\n/, $want;
	my %g = map { split /=/ } split /\n/, $got;
	my @diff = map { "$_: " . ($g{$_} // 'missing') . ' (was ' . ($w{$_} // 'missing') . ')' }
	  grep { ($g{$_} // '') ne ($w{$_} // '') } sort(keys %{ { %w, %g } });
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	return Test::More::is(join(', ', @diff), '', $name);
}

# Runs each SQL script in its own psql connected to $node, all at once; returns, per script,
# [exit code, stdout, stderr] once all have finished.
sub run_clients
{
	my ($node, @scripts) = @_;
	my @runs;
	for my $sql (@scripts)
	{
		my %r = (in => $sql, out => '', err => '');
		$r{h} = IPC::Run::start(
			[ 'psql', '-X', '-A', '-t', '-q', '-h', $node->host, '-p', $node->port, '-d', 'postgres', '-f', '-' ],
			'<', \$r{in}, '>', \$r{out}, '2>', \$r{err},
			IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
		push @runs, \%r;
	}
	my @results;
	for my $r (@runs)
	{
		$r->{h}->finish;
		push @results, [ $r->{h}->result(0), $r->{out}, $r->{err} ];
	}
	return @results;
}

# The distinct errors of run_clients' results (each ERROR line with its CONTEXT's first line
# and how many times it came), for a readable failure.
sub client_errors
{
	my (@results) = @_;
	my (%n, @order);
	for my $r (@results)
	{
		while ($r->[2] =~ /ERROR:\s+(.*)(?:\n(?:DETAIL|HINT):.*)*(?:\nCONTEXT:\s+(.*))?/g)
		{
			my $e = $1 . (defined $2 ? " (CONTEXT: " . substr($2, 0, 160) . ")" : '');
			push @order, $e unless $n{$e}++;
		}
	}
	return join("\n", map { "$n{$_} x $_" } @order);
}

# The fields of a composite value's text form ("(1,a,\"b c\",,...)"); an empty unquoted
# field is undef (NULL).
sub record_fields
{
	my ($text) = @_;
	$text =~ s/^\((.*)\)$/$1/s or die "not a record: $text";
	my @fields;
	while (1)
	{
		if ($text =~ s/^"((?:[^"\\]|""|\\.)*)"//s)
		{
			(my $f = $1) =~ s/""/"/g;
			$f =~ s/\\(.)/$1/g;
			push @fields, $f;
		}
		elsif ($text =~ s/^([^,]*)//)
		{
			push @fields, $1 eq '' ? undef : $1;
		}
		last unless $text =~ s/^,//;
	}
	return @fields;
}

1;
