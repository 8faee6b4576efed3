"""The coefficients of `EXPM1_ON_LN2` in ferrax/src/array/math/double.rs.

`(e^r - 1 - r) / r^2` on [0, ln 2] as a polynomial of degree 10 in r: the
interpolant at the 11 Chebyshev nodes of the interval (within a hair of
the best polynomial of its degree), solved in 60-digit arithmetic and
rounded to f64. Prints the coefficients, lowest first, and the largest
error of the rounded polynomial over 2001 points of the interval.

    bench/.venv/bin/python scripts/fit-expm1.py    (mpmath comes with the bench's venv)
"""
import mpmath as mp

mp.mp.dps = 60
DEGREE = 10
top = mp.log(2)


def q(r):
    return mp.mpf(1) / 2 if r == 0 else (mp.expm1(r) - r) / r**2


nodes = [top / 2 * (1 - mp.cos(mp.pi * (2 * k + 1) / (2 * (DEGREE + 1)))) for k in range(DEGREE + 1)]
exact = mp.lu_solve(mp.matrix([[x**j for j in range(DEGREE + 1)] for x in nodes]), mp.matrix([q(x) for x in nodes]))
coefficients = [float(exact[j]) for j in range(DEGREE + 1)]
points = (top * i / 2000 for i in range(2001))
error = max(abs(sum(mp.mpf(c) * r**j for j, c in enumerate(coefficients)) - q(r)) for r in points)
for c in coefficients:
    print(f"    {c!r},")
print(f"largest error {mp.nstr(error, 3)}")
