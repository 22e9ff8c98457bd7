"""Render one bird picture: family body, species mark, random pose, background and noise.

Shapes are implicit regions (ellipses, circles, bands) evaluated on a supersampled pixel grid that
is mapped back into the bird's own frame (bird facing +u, v pointing down, units = image
half-widths), then averaged down: anti-aliased drawing with no per-pixel Python loop.
"""

from __future__ import annotations

import numpy as np

from dcinet.sources.synth.taxonomy import MARK_RGB, Species

SUPERSAMPLE = 2
BACKGROUNDS: tuple[tuple[int, int, int], ...] = (
    (150, 190, 225), (95, 140, 80), (200, 185, 150), (140, 140, 140), (70, 95, 60), (180, 160, 190),
    (215, 215, 205), (110, 90, 70),
)
"""Habitat background colours (RGB); chosen at random per picture, independent of the class."""
LEAF_RGB = (60, 120, 45)
BRANCH_RGB = (92, 66, 42)


def _ellipse(u: np.ndarray, v: np.ndarray, cu: float, cv: float, au: float, av: float,
             angle: float = 0.0) -> np.ndarray:
    """Boolean mask of an ellipse centred at (cu, cv), semi-axes (au, av), rotated by ``angle`` rad."""
    du, dv = u - cu, v - cv
    c, s = np.cos(angle), np.sin(angle)
    ru, rv = c * du + s * dv, -s * du + c * dv
    return (ru / au) ** 2 + (rv / av) ** 2 <= 1.0


def _smooth_noise(rng: np.random.Generator, n: int, cells: int) -> np.ndarray:
    """Smooth random field ``(n, n)`` in [-1, 1]: a ``(cells+1)^2`` grid, bilinearly interpolated."""
    grid = rng.uniform(-1.0, 1.0, (cells + 1, cells + 1))
    pos = np.linspace(0.0, cells, n, endpoint=False) + 0.5 * cells / n
    i = np.minimum(pos.astype(int), cells - 1)
    f = pos - i
    rows = grid[i] * (1 - f)[:, None] + grid[i + 1] * f[:, None]
    return rows[:, i] * (1 - f)[None, :] + rows[:, i + 1] * f[None, :]


def _background(rng: np.random.Generator, n: int) -> np.ndarray:
    """Habitat background ``(n, n, 3)`` float: base colour, blotches, sometimes grass stripes."""
    base = np.array(BACKGROUNDS[rng.integers(len(BACKGROUNDS))], dtype=np.float64)
    base += rng.normal(0.0, 12.0, 3)
    blotch = _smooth_noise(rng, n, int(rng.integers(3, 8)))[..., None] * rng.uniform(10.0, 40.0)
    tint = rng.normal(0.0, 1.0, 3) * 0.4 + 1.0
    img = base + blotch * tint
    if rng.random() < 0.3:
        x = np.arange(n) / n
        phase = rng.uniform(0, 2 * np.pi)
        stripes = np.sin(2 * np.pi * rng.uniform(6, 14) * x + phase + 3 * _smooth_noise(rng, n, 3))
        img += (stripes * rng.uniform(8.0, 20.0))[..., None] * np.array([0.6, 1.0, 0.5])
    return img


def _paint(img: np.ndarray, mask: np.ndarray, rgb: np.ndarray | tuple) -> None:
    img[mask] = np.asarray(rgb, dtype=np.float64)


def render_image(species: Species, rng: np.random.Generator, size: int) -> np.ndarray:
    """A ``(size, size, 3)`` uint8 RGB picture of one bird of ``species``.

    Family attributes fix the body colour and proportions; the species fixes the mark's colour and
    kind. Per picture (from ``rng``): rotation (+-25 deg), horizontal flip, scale (0.75-1.15),
    position, body / mark colour jitter, lighting, background, a perch branch, sometimes a leaf over
    the mark, and Gaussian pixel noise.
    """
    fam = species.family
    n = size * SUPERSAMPLE
    img = _background(rng, n)
    coords = (np.arange(n) + 0.5) / n * 2.0 - 1.0
    x, y = np.meshgrid(coords, coords)

    if rng.random() < 0.6:  # a branch across the picture, behind the bird
        angle = rng.uniform(-0.5, 0.5)
        dist = -np.sin(angle) * x + np.cos(angle) * (y - rng.uniform(0.15, 0.45))
        _paint(img, np.abs(dist) < rng.uniform(0.03, 0.07), np.array(BRANCH_RGB) + rng.normal(0, 10, 3))

    theta = rng.uniform(-0.45, 0.45)
    scale = rng.uniform(0.75, 1.15)
    tx, ty = rng.uniform(-0.12, 0.12, 2)
    c, s = np.cos(theta), np.sin(theta)
    u = (c * (x - tx) + s * (y - ty)) / scale
    v = (-s * (x - tx) + c * (y - ty)) / scale
    if rng.random() < 0.5:
        u = -u

    a = 0.38 * rng.uniform(0.95, 1.05)
    b = a / fam.aspect
    head_r = fam.head
    hu, hv = a * 0.80, -b * 0.70
    tail_len = fam.tail
    body_rgb = np.array(fam.body_rgb, dtype=np.float64) + rng.normal(0.0, 10.0, 3)
    mark_rgb = np.array(MARK_RGB[species.mark_colour], dtype=np.float64) + rng.normal(0.0, 12.0, 3)

    tail = _ellipse(u, v, -a - tail_len * 0.35, -b * 0.25, tail_len * 0.65, b * 0.32, -0.25)
    body = _ellipse(u, v, 0.0, 0.0, a, b)
    wing = _ellipse(u, v, -a * 0.12, -b * 0.12, a * 0.68, b * 0.55, -0.15)
    head = (u - hu) ** 2 + (v - hv) ** 2 <= head_r ** 2
    beak = _ellipse(u, v, hu + head_r + fam.beak * 0.35, hv + head_r * 0.1, fam.beak * 0.6, 0.022)
    eu, ev = hu + head_r * 0.38, hv - head_r * 0.15
    eye_d2 = (u - eu) ** 2 + (v - ev) ** 2

    _paint(img, tail, body_rgb * 0.8)
    _paint(img, body, body_rgb)
    _paint(img, wing, body_rgb * 0.72)
    _paint(img, head, body_rgb * 1.05)
    _paint(img, beak, (60, 50, 40))

    kind = species.mark_kind
    if kind == "wing bar":
        wc, ws = np.cos(-0.15), np.sin(-0.15)
        along = wc * (u + a * 0.12) + ws * (v + b * 0.12)
        mark = wing & (np.abs(along - a * 0.15) < 0.045)
    elif kind == "crown patch":
        mark = head & (v - hv < -head_r * 0.35)
    elif kind == "eye ring":
        mark = (eye_d2 <= (head_r * 0.48) ** 2) & (eye_d2 > (head_r * 0.2) ** 2)
    elif kind == "throat patch":
        mark = ((u - hu - head_r * 0.35) ** 2 + (v - hv - head_r * 0.95) ** 2 <= (head_r * 0.6) ** 2) & (body | head)
    else:  # tail band
        tc, ts = np.cos(-0.25), np.sin(-0.25)
        along = tc * (u + a + tail_len * 0.35) + ts * (v + b * 0.25)
        mark = tail & (np.abs(along + tail_len * 0.25) < 0.04) & ~body
    _paint(img, mark, mark_rgb)
    _paint(img, eye_d2 <= (head_r * 0.2) ** 2, (15, 15, 15))

    if rng.random() < 0.2 and mark.any():  # a leaf in front of (part of) the mark
        centre = np.argwhere(mark).mean(axis=0)
        lu = u[int(centre[0]), int(centre[1])] + rng.normal(0.0, 0.05)
        lv = v[int(centre[0]), int(centre[1])] + rng.normal(0.0, 0.05)
        leaf = _ellipse(u, v, lu, lv, rng.uniform(0.07, 0.13), rng.uniform(0.035, 0.06), rng.uniform(0, np.pi))
        _paint(img, leaf, np.array(LEAF_RGB) + rng.normal(0, 12, 3))

    img = img.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE, 3).mean(axis=(1, 3))
    img = img * rng.uniform(0.8, 1.15) + rng.normal(0.0, rng.uniform(2.0, 12.0), img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)
