/* attention_fa3_7 — flash configuration 7 of the attention op:
 * 128-key tiles, K and V rings of two stages, two softmax
 * stages, ping-pong: configuration 6's block with the schedules, softmax
 * and output of attention_fa3.cuh (what those alone are worth).
 * The kernel and its contract: attention_fa3.cuh.
 */
#include "attention_fa3.cuh"

FA3_CONFIGURATION (7, 128, 2, 2, 2, 1)
