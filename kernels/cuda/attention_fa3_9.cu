/* attention_fa3_9 — flash configuration 9 of the attention op:
 * 176-key tiles (FlashAttention-3's tile for d = 128), rings of
 * two stages, two softmax stages, ping-pong: fewer, longer rounds per item
 * (S 88 registers, P 44).
 * The kernel and its contract: attention_fa3.cuh.
 */
#include "attention_fa3.cuh"

FA3_CONFIGURATION (9, 176, 2, 2, 2, 1)
