/* attention_fa3_10 — flash configuration 10 of the attention op:
 * 144-key tiles, a K ring of three stages and a V ring of
 * two, two softmax stages, ping-pong: 144 divides 720, 2160 and 4320, so
 * the 14B shapes waste no key columns and the 720-key causal blocks end on
 * tile edges.
 * The kernel and its contract: attention_fa3.cuh.
 */
#include "attention_fa3.cuh"

FA3_CONFIGURATION (10, 144, 3, 2, 2, 1)
