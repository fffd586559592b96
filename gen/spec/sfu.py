"""The constants of the special-function algorithms (``exp`` and reciprocal), as fp32 bit
patterns, shared by the RTL (:mod:`chrysalis.hw.sfu`) and the golden model
(:mod:`chrysalis.sim.golden.sfu`, which documents the algorithms;
``docs/special_functions.md``).
"""

__all__ = [
    "ONE", "SATURATED", "LOG2E", "EXP_SHIFTER", "EXP_CLAMP", "NEG_LN2_HI", "NEG_LN2_LO",
    "EXP_POLY", "RECIP_TABLE_BITS", "RECIP_TABLE", "EXP_FMAS", "RECIP_FMAS",
]

#: 1.0
ONE = 0x3F800000
#: The largest fp32 value (2 - 2**-23) * 2**128, the saturation result (no Inf here).
SATURATED = 0x7FFFFFFF

# exp

#: 1.44269502162933349609375 = RN(log2(e))
LOG2E = 0x3FB8AA3B
#: 12582912.0 = 1.5 * 2**23, the round-to-integer shifter: for |v| < 2**22, fmac(SHIFTER,
#: x, LOG2E) is an integer-valued fp32 whose low 23 bits are 0x400000 + RNE(x * LOG2E).
EXP_SHIFTER = 0x4B400000
#: 128.0: |x| is clamped to this before the reduction (exp(128) saturates, exp(-128)
#: flushes), which keeps k within [-185, 185] and the shifter trick valid.
EXP_CLAMP = 0x43000000
#: -0.693147182464599609375 = -RN(ln 2). k * LN2_HI is exact inside the FMA (exact product)
#: and x - k * LN2_HI is a multiple of 2**-24 below 0.35 in magnitude, so exact as well.
NEG_LN2_HI = 0xBF317218
#: 1.9046542121259336e-09 = -RN(ln 2 - RN(ln 2)); the remainder ln 2 - HI - LO is -8.8e-17.
NEG_LN2_LO = 0x3102E308
#: Coefficients P1..P6 of p(r) = 1 + P1 r + P2 r**2 + ... + P6 r**6 ~ exp(r), |r| <= ln2/2:
#: a discrete minimax fit of the relative error with P1 fixed at 1.0 and each coefficient
#: rounded to fp32 before the remaining ones were refitted; relative error <= 2**-28.25.
EXP_POLY = (
    0x3F800000,  # P1 = 1.0
    0x3EFFFFFE,  # P2 = 0.4999999403953552
    0x3E2AAA49,  # P3 = 0.1666652113199234
    0x3D2AAC55,  # P4 = 0.041668254882097244
    0x3C091CB7,  # P5 = 0.008368662558495998
    0x3AB52927,  # P6 = 0.0013821468455716968
)

# reciprocal

#: Mantissa bits that index the seed table.
RECIP_TABLE_BITS = 6
#: Seed y0 ~ 1/m for m in [1 + i/64, 1 + (i+1)/64): RN(2 / (a + b)) = RN(128 / (129 + 2i)),
#: the reciprocal of the interval's midpoint; relative error below 2**-7.
RECIP_TABLE = (
    0x3F7E03F8,  #  0: 0.992248058 = RN(128/129)
    0x3F7A232D,  #  1: 0.97709924 = RN(128/131)
    0x3F76603E,  #  2: 0.962406039 = RN(128/133)
    0x3F72B9D6,  #  3: 0.948148131 = RN(128/135)
    0x3F6F2EB7,  #  4: 0.934306562 = RN(128/137)
    0x3F6BBDB3,  #  5: 0.92086333 = RN(128/139)
    0x3F6865AC,  #  6: 0.90780139 = RN(128/141)
    0x3F652598,  #  7: 0.895104885 = RN(128/143)
    0x3F61FC78,  #  8: 0.882758617 = RN(128/145)
    0x3F5EE95C,  #  9: 0.870748281 = RN(128/147)
    0x3F5BEB62,  # 10: 0.859060407 = RN(128/149)
    0x3F5901B2,  # 11: 0.847682118 = RN(128/151)
    0x3F562B81,  # 12: 0.836601317 = RN(128/153)
    0x3F53680D,  # 13: 0.825806439 = RN(128/155)
    0x3F50B6A0,  # 14: 0.815286636 = RN(128/157)
    0x3F4E168A,  # 15: 0.805031419 = RN(128/159)
    0x3F4B8728,  # 16: 0.795031071 = RN(128/161)
    0x3F4907DA,  # 17: 0.785276055 = RN(128/163)
    0x3F46980C,  # 18: 0.775757551 = RN(128/165)
    0x3F443730,  # 19: 0.766467094 = RN(128/167)
    0x3F41E4BC,  # 20: 0.75739646 = RN(128/169)
    0x3F3FA030,  # 21: 0.748538017 = RN(128/171)
    0x3F3D6910,  # 22: 0.739884377 = RN(128/173)
    0x3F3B3EE7,  # 23: 0.731428564 = RN(128/175)
    0x3F392144,  # 24: 0.723163843 = RN(128/177)
    0x3F370FBB,  # 25: 0.715083778 = RN(128/179)
    0x3F3509E7,  # 26: 0.707182348 = RN(128/181)
    0x3F330F63,  # 27: 0.699453533 = RN(128/183)
    0x3F311FD4,  # 28: 0.691891909 = RN(128/185)
    0x3F2F3ADE,  # 29: 0.684491992 = RN(128/187)
    0x3F2D602B,  # 30: 0.677248657 = RN(128/189)
    0x3F2B8F6A,  # 31: 0.670157075 = RN(128/191)
    0x3F29C84A,  # 32: 0.663212419 = RN(128/193)
    0x3F280A81,  # 33: 0.656410277 = RN(128/195)
    0x3F2655C4,  # 34: 0.64974618 = RN(128/197)
    0x3F24A9CF,  # 35: 0.643216074 = RN(128/199)
    0x3F23065E,  # 36: 0.636815906 = RN(128/201)
    0x3F216B31,  # 37: 0.630541861 = RN(128/203)
    0x3F1FD80A,  # 38: 0.624390244 = RN(128/205)
    0x3F1E4CAD,  # 39: 0.61835748 = RN(128/207)
    0x3F1CC8E1,  # 40: 0.612440169 = RN(128/209)
    0x3F1B4C70,  # 41: 0.606635094 = RN(128/211)
    0x3F19D723,  # 42: 0.600938976 = RN(128/213)
    0x3F1868C8,  # 43: 0.595348835 = RN(128/215)
    0x3F17012E,  # 44: 0.589861751 = RN(128/217)
    0x3F15A025,  # 45: 0.584474862 = RN(128/219)
    0x3F144581,  # 46: 0.579185545 = RN(128/221)
    0x3F12F114,  # 47: 0.57399106 = RN(128/223)
    0x3F11A2B4,  # 48: 0.568888903 = RN(128/225)
    0x3F105A38,  # 49: 0.563876629 = RN(128/227)
    0x3F0F177A,  # 50: 0.558951974 = RN(128/229)
    0x3F0DDA52,  # 51: 0.554112554 = RN(128/231)
    0x3F0CA29C,  # 52: 0.549356222 = RN(128/233)
    0x3F0B7034,  # 53: 0.544680834 = RN(128/235)
    0x3F0A42F8,  # 54: 0.540084362 = RN(128/237)
    0x3F091AC7,  # 55: 0.53556484 = RN(128/239)
    0x3F07F781,  # 56: 0.53112036 = RN(128/241)
    0x3F06D905,  # 57: 0.526748955 = RN(128/243)
    0x3F05BF37,  # 58: 0.522448957 = RN(128/245)
    0x3F04A9FA,  # 59: 0.518218637 = RN(128/247)
    0x3F039930,  # 60: 0.514056206 = RN(128/249)
    0x3F028CC0,  # 61: 0.509960175 = RN(128/251)
    0x3F01848E,  # 62: 0.505928874 = RN(128/253)
    0x3F008081,  # 63: 0.501960814 = RN(128/255)
)

#: FMAs per element, in issue order (each depends on the one before).
EXP_FMAS = 9
RECIP_FMAS = 4
