/*
 * config/flowgraph.h
 *	  What flowgraph.c (validating decision flow graphs) gives flowcompile.c
 *	  (compiling them): the node limit, node types by name and the rank
 *	  node's "by" names (in KRankBy order).
 */
#ifndef KAIREON_CONFIG_FLOWGRAPH_H
#define KAIREON_CONFIG_FLOWGRAPH_H

#define GRAPH_MAX_NODES 200

extern int	kflow_node_type(const char *name);
extern const char *const kflow_rank_by_names[];	/* NULL-terminated, by KRankBy */

#endif							/* KAIREON_CONFIG_FLOWGRAPH_H */
