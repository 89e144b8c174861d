/* The vector float32 samplers (cpu_random_vec.c). */
#ifndef FERRY_CPU_RANDOM_VEC_API_H
#define FERRY_CPU_RANDOM_VEC_API_H

#include <stdint.h>

#include "cpu_internal.h"

struct fk_random;

/* Writes the float32 values of blocks j0 .. j0 + m - 1 of draw p to o (4 per block),
 * bit for bit those of fk_random_block_f32, for the largest m <= nblocks this CPU's
 * vector width handles (0 without a vector build), and returns m. */
CPU_HIDDEN int64_t cpu_random_f32_vec(const struct fk_random *p, uint64_t j0, int64_t nblocks,
                                      float *o);

/* The same for a narrow randint (fk_random_int_narrow) into int32 (wide 0) or int64
 * (wide 1), bit for bit those of fk_random_block_int stored in that type. */
CPU_HIDDEN int64_t cpu_random_int_vec(const struct fk_random *p, uint64_t j0, int64_t nblocks,
                                      void *o, int wide);

#endif
