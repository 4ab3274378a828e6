/* attention_fa3_12 — flash configuration 12 of the attention op:
 * configuration 7 without ping-pong: the two consumer
 * warpgroups issue their GEMMs whenever they are ready (what the
 * named-barrier turns are worth).
 * The kernel and its contract: attention_fa3.cuh.
 */
#include "attention_fa3.cuh"

FA3_CONFIGURATION (12, 128, 2, 2, 2, 0)
