/* attention_fa3_11 — flash configuration 11 of the attention op:
 * 80-key tiles, rings of three stages, three softmax stages,
 * ping-pong: S double-buffered, the softmax of tile t under Q K_{t+1}ᵀ and
 * P_{t-1} V_{t-1} of its own warpgroup (two S of 40 registers; 96 or 112
 * keys spill at 240 registers); 80 divides 720, 2160 and 4320.
 * The kernel and its contract: attention_fa3.cuh.
 */
#include "attention_fa3.cuh"

FA3_CONFIGURATION (11, 80, 3, 3, 3, 1)
