/* SPDX-License-Identifier: GPL-2.0 */
#ifndef LUO_RS_SELFTEST_KMEMLEAK_H
#define LUO_RS_SELFTEST_KMEMLEAK_H

/* Clears the leaks from before the test; reports new ones when the process exits. */
void kmemleak_start(int stage);

#endif
