/* cluster.h — `tapwork cluster check`: does a Kubernetes cluster meet the spec?
 *
 * The spec (docs/deploy.md): at least TW_CLUSTER_MIN_NODES Ready, schedulable
 * nodes with TW_CLUSTER_MIN_CPU CPUs and TW_CLUSTER_MIN_MEM_BYTES of memory
 * capacity each, less TW_CLUSTER_MEM_TOLERANCE_PCT percent (a "16 GB" machine
 * reports e.g. 16393216Ki once firmware and kernel took their share), spread
 * over zones where zone labels exist, and a default StorageClass. */
#ifndef TW_CLI_CLUSTER_H
#define TW_CLI_CLUSTER_H

#include <stddef.h>

#define TW_CLUSTER_MIN_NODES 3
#define TW_CLUSTER_MIN_CPU 4
#define TW_CLUSTER_MIN_MEM_BYTES (16ULL << 30)
#define TW_CLUSTER_MEM_TOLERANCE_PCT 5

/* Parse a Kubernetes resource quantity ("4", "3500m", "16393216Ki", "16Gi",
 * "1.5G", "2e3") into thousandths of the unit (millicores, millibytes).
 * Returns 0, TW_EINVAL on syntax errors, TW_ELIMIT when it overflows. */
int tw_cluster_parse_quantity(const char *s, size_t len, unsigned long long *milli);

#endif
