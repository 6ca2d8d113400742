"""Collective-communication times (alpha-beta / Hockney model), scalars or arrays.

Bandwidths are in bytes/s per GPU and one direction, already multiplied by the achievable link
efficiency; latencies in seconds.
"""

import numpy as np


def ring_allreduce_s(message_bytes, world, latency_s, bandwidth_Bps):
    # Thakur, Rabenseifner & Gropp 2005: 2(p-1)·α + 2·(p-1)/p · n/B
    return 2.0 * (world - 1.0) * latency_s + 2.0 * (world - 1.0) / world * message_bytes / bandwidth_Bps


def tree_allreduce_s(message_bytes, world, latency_s, bandwidth_Bps):
    # binomial-tree reduce + broadcast (Thakur 2005; Paleo TreeAllReduce): 2·⌈lg p⌉·(α + n/B)
    steps = np.ceil(np.log2(np.maximum(world, 1.0)))
    return 2.0 * steps * (latency_s + message_bytes / bandwidth_Bps)


def ring_allgather_s(message_bytes, world, latency_s, bandwidth_Bps):
    # Thakur 2005: ring all-gather (p-1)·α + n·(p-1)/p/B; n = the gathered (full) size
    return (world - 1.0) * latency_s + (world - 1.0) / world * message_bytes / bandwidth_Bps


def ring_reduce_scatter_s(message_bytes, world, latency_s, bandwidth_Bps):
    # Thakur 2005: pairwise/ring reduce-scatter (p-1)·α + n·(p-1)/p/B (reduction arithmetic ignored)
    return ring_allgather_s(message_bytes, world, latency_s, bandwidth_Bps)


def all_to_all_s(message_bytes, world, ranks_per_node, intra_latency_s, intra_Bps, inter_latency_s, inter_Bps):
    """All-to-all of `message_bytes` per rank (its whole send buffer) over `world` ranks, `ranks_per_node` per node.

    Thakur 2005 pairwise exchange: (p-1)·α + n·(p-1)/p/B. A rank's n/p slices to its node's other k-1 ranks go
    over the node's link, those to the p-k ranks elsewhere over its NIC, both at once (the slower sets the time).
    """
    p = np.maximum(world, 1.0)
    k = np.clip(ranks_per_node, 1.0, p)
    latency = np.where(p > k, inter_latency_s, intra_latency_s)
    intra = message_bytes * (k - 1.0) / p / intra_Bps
    inter = message_bytes * (p - k) / p / inter_Bps
    return (p - 1.0) * latency + np.maximum(intra, inter)


def p2p_s(message_bytes, latency_s, bandwidth_Bps):
    # Hockney: t = α + n/B
    return latency_s + message_bytes / bandwidth_Bps


def parameter_server_s(worker_bytes, total_bytes, servers, latency_s, worker_Bps, server_Bps):
    """Push gradients and pull weights through S sharded servers (Li et al. 2014, OSDI; traffic derived).

    T ≈ 2α + max(2·M/B_worker, 2·P·M/(S·B_server)): each worker moves its M bytes both ways over its
    own link, while the S server links together carry everybody's P·M (= total_bytes) both ways.
    Paleo OneToAll (paleo/comm.py) is the S = 1 case.
    """
    worker = 2.0 * worker_bytes / worker_Bps
    server = 2.0 * total_bytes / (np.maximum(servers, 1.0) * server_Bps)
    return 2.0 * latency_s + np.maximum(worker, server)


def hierarchical_allreduce_s(message_bytes, world, ranks_per_node, intra_latency_s, intra_Bps,
                             inter_latency_s, inter_Bps, tree=False):
    """All-reduce over `world` ranks, `ranks_per_node` of them sharing a node (NCCL-style).

    Reduce-scatter inside the node, all-reduce of the n/k shard across nodes (ring or binomial tree,
    each rank on its own NIC), all-gather inside the node (Thakur 2005 per stage; NCCL's hierarchical
    rings and trees). With one node this is exactly the intra-node ring all-reduce.
    """
    k = np.clip(ranks_per_node, 1.0, np.maximum(world, 1.0))
    nodes = np.ceil(world / k)
    shard = message_bytes / k
    intra = 2.0 * ring_reduce_scatter_s(message_bytes, k, intra_latency_s, intra_Bps)
    ring = ring_allreduce_s(shard, nodes, inter_latency_s, inter_Bps)
    if tree is False:
        return intra + ring
    return intra + np.where(tree, tree_allreduce_s(shard, nodes, inter_latency_s, inter_Bps), ring)
