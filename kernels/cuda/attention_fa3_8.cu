/* attention_fa3_8 — flash configuration 8 of the attention op:
 * 128-key tiles, K and V rings of three stages (225 KB of
 * shared memory), two softmax stages, ping-pong: whether a deeper ring
 * hides the latency of K/V tiles that miss L2.
 * The kernel and its contract: attention_fa3.cuh.
 */
#include "attention_fa3.cuh"

FA3_CONFIGURATION (8, 128, 3, 3, 2, 1)
