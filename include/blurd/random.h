/* random.h - the one mixer behind blurd's reproducible random choices: splitmix64 (Steele,
 * Lea and Flood, "Fast Splittable Pseudorandom Number Generators", OOPSLA 2014).  The net
 * draws He initialisation and dropout masks from it, the dataset its synth streams and
 * split positions, training its sample order, flips and dropout seeds.  Header-only, so
 * each call inlines into its loop. */
#ifndef BLURD_RANDOM_H
#define BLURD_RANDOM_H

#include <stdint.h>

/* Advances `state` by the golden-ratio increment and returns the mix of the new state. */
static inline uint64_t blurd_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

#endif
