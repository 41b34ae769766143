"""The embedded default dataset: procedural galaxies rendered from physical ingredients.

Used when no ``--data`` is given, so that ``make synth`` runs on a fresh clone. Every image is
built from the pieces a morphologist looks at, in SDSS-like gri colours:

* Sérsic bulges (n≈4, red) and inclined exponential disks (n=1, blue);
* logarithmic spiral arms of both chiralities, optional bars, dust lanes on edge-on disks;
* mergers: two overlapping galaxies with one-armed tidal tails;
* a Gaussian PSF, sky noise, foreground stars (which mimic companions);
* redshift ``z`` (with ``z_err``) that shrinks and dims the galaxy, so small faint
  high-z spirals lose their arms into the noise. Class fractions drift with z (ellipticals and
  mergers are more frequent at high z), so z is informative but never decisive.

Mirror symmetry is exact: flipping a ``spiral_cw`` image left-right gives a ``spiral_acw``
one, which the augmentation relies on (see ``synthesis.training.augment``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.ndimage import gaussian_filter

CLASS_NAMES = ("elliptical", "spiral_cw", "spiral_acw", "edge_on", "merger")


# Base class frequencies: imbalanced like Galaxy Zoo, but less extreme.
_BASE_FREQ = np.array([0.42, 0.14, 0.14, 0.18, 0.12])


class Palette(NamedTuple):
    """The spectrum of each kind of light, one value per band: old stars (red), young (blue), neutral."""

    red: np.ndarray
    blue: np.ndarray
    white: np.ndarray


# Colours per component, (g, r, i) mapped to (B, G, R) → stored as RGB.
RGB = Palette(np.array([1.00, 0.78, 0.52]), np.array([0.62, 0.78, 1.00]), np.array([1.0, 1.0, 1.0]))


def band_palette(bands: int) -> Palette:
    """Spectra over ``bands`` bands ordered blue to red (g r i z y…): old stars rise to the red, young fall."""
    t = np.linspace(0.0, 1.0, bands)
    return Palette(0.45 + 0.55 * t ** 0.8, 1.0 - 0.45 * t, np.ones(bands))


def _sersic_b(n: float) -> float:
    return 2.0 * n - 1.0 / 3.0 + 0.009876 / n


def _coords(x: np.ndarray, y: np.ndarray, cx: float, cy: float, pa: float) -> tuple[np.ndarray, np.ndarray]:
    dx, dy = x - cx, y - cy
    c, s = np.cos(pa), np.sin(pa)
    return c * dx + s * dy, -s * dx + c * dy


def _sersic(x: np.ndarray, y: np.ndarray, cx: float, cy: float, r_e: float, n: float, q: float, pa: float) -> np.ndarray:
    u, v = _coords(x, y, cx, cy, pa)
    r = np.sqrt(u * u + (v / q) ** 2) + 1e-6
    return np.exp(-_sersic_b(n) * ((r / r_e) ** (1.0 / n) - 1.0))


def _spiral_disk(
    x: np.ndarray,
    y: np.ndarray,
    cx: float,
    cy: float,
    r_d: float,
    q: float,
    pa: float,
    chirality: int,
    n_arms: int,
    pitch_deg: float,
    arm_strength: float,
    phase: float,
) -> np.ndarray:
    """Exponential disk modulated by logarithmic arms; ``chirality`` = +1 or −1 sets the winding."""
    u, v = _coords(x, y, cx, cy, pa)
    v = v / q  # de-project the inclined disk
    r = np.sqrt(u * u + v * v) + 1e-6
    theta = np.arctan2(v, u)
    disk = np.exp(-r / r_d)
    winding = np.log(r / r_d + 1e-3) / np.tan(np.radians(pitch_deg))
    arm = 0.5 * (1.0 + np.cos(n_arms * (theta - chirality * winding) + phase))
    arm = arm**3  # sharpen into narrow arms
    # Arms fade inside the bulge and beyond a few scale lengths.
    envelope = (1.0 - np.exp(-((r / (0.6 * r_d)) ** 2))) * np.exp(-r / (3.0 * r_d))
    return disk * (1.0 - arm_strength) + arm_strength * 3.0 * arm * envelope


def _render_spiral(x, y, cx, cy, scale, rng, chirality, face_on=True, sed: Palette = RGB) -> np.ndarray:
    q = rng.uniform(0.45, 1.0) if face_on else rng.uniform(0.07, 0.2)
    pa = rng.uniform(0, np.pi)
    r_d = scale * rng.uniform(0.8, 1.3)
    img = np.zeros(x.shape + (len(sed.white),))
    if face_on:
        disk = _spiral_disk(
            x, y, cx, cy, r_d, q, pa, chirality,
            n_arms=int(rng.choice([1, 2, 2, 2, 3])),
            pitch_deg=rng.uniform(12, 30),
            arm_strength=rng.uniform(0.45, 0.85),
            phase=rng.uniform(0, 2 * np.pi),
        )
        if rng.random() < 0.35:  # bar
            bar = _sersic(x, y, cx, cy, r_d * 0.7, 0.5, 0.25, pa + rng.uniform(-0.5, 0.5))
            img += 0.6 * bar[..., None] * ((sed.red + sed.white) / 2)
    else:
        u, v = _coords(x, y, cx, cy, pa)
        disk = 2.0 * np.exp(-np.abs(u) / r_d) * np.exp(-np.abs(v) / (r_d * q))
        if rng.random() < 0.6:  # dust lane along the mid-plane
            disk *= 1.0 - 0.7 * np.exp(-((v / (0.35 * r_d * q)) ** 2))
    img += disk[..., None] * sed.blue
    bulge_frac = rng.uniform(0.15, 0.6) if face_on else rng.uniform(0.1, 0.8)
    bulge = _sersic(x, y, cx, cy, r_d * rng.uniform(0.2, 0.4), 4.0, rng.uniform(0.7, 1.0), pa)
    img += bulge_frac * 2.0 * bulge[..., None] * sed.red
    return img


def _render_elliptical(x, y, cx, cy, scale, rng, sed: Palette = RGB) -> np.ndarray:
    r_e = scale * rng.uniform(0.7, 1.4)
    prof = _sersic(x, y, cx, cy, r_e, rng.uniform(2.5, 5.0), rng.uniform(0.45, 1.0), rng.uniform(0, np.pi))
    return 1.5 * prof[..., None] * sed.red


def _render_merger(x, y, cx, cy, scale, rng, sed: Palette = RGB) -> np.ndarray:
    sep = scale * rng.uniform(0.9, 2.0)
    ang = rng.uniform(0, 2 * np.pi)
    dx, dy = 0.5 * sep * np.cos(ang), 0.5 * sep * np.sin(ang)
    img = np.zeros(x.shape + (len(sed.white),))
    for sign, flux in ((1, 1.0), (-1, rng.uniform(0.4, 1.0))):
        px, py = cx + sign * dx, cy + sign * dy
        if rng.random() < 0.5:
            img += flux * _render_elliptical(x, y, px, py, scale * 0.8, rng, sed)
        else:
            img += flux * _render_spiral(x, y, px, py, scale * 0.8, rng, int(rng.choice([-1, 1])), sed=sed)
        # A one-armed tidal tail: a loose, strong, lopsided arm.
        tail = _spiral_disk(x, y, px, py, scale * 1.6, rng.uniform(0.5, 1.0), rng.uniform(0, np.pi),
                            int(rng.choice([-1, 1])), 1, rng.uniform(30, 50), 1.0, rng.uniform(0, 2 * np.pi))
        img += flux * rng.uniform(0.12, 0.25) * tail[..., None] * sed.blue
    return img


def _class_probabilities(z: float) -> np.ndarray:
    # Magnitude-limited samples favour luminous ellipticals at high z, and the merger fraction
    # grows with z; the drift is gentle so z alone cannot classify.
    t = (z - 0.02) / 0.18
    freq = _BASE_FREQ * np.array([1.0 + 0.5 * t, 1.0 - 0.2 * t, 1.0 - 0.2 * t, 1.0 - 0.3 * t, 1.0 + 0.8 * t])
    return freq / freq.sum()


def generate_galaxies(
    n: int = 3000,
    size: int = 64,
    seed: int = 0,
    label_noise: float = 0.02,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]:
    """Render ``n`` galaxies deterministically from ``seed``.

    Returns ``(images uint8 [n,size,size,3], labels int64 [n], extras float32 [n,2] = (z, z_err),
    class_names)``. ``label_noise`` flips that fraction of labels to a random class, as volunteer
    vote labels are noisy too.
    """
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    labels = np.empty(n, dtype=np.int64)
    extras = np.empty((n, 2), dtype=np.float32)
    for i, (flux, label, z_pair, _) in enumerate(_render_all(n, size, seed, label_noise, RGB)):
        images[i] = rgb_stretch(flux)
        labels[i], extras[i] = label, z_pair
    return images, labels, extras, CLASS_NAMES


def rgb_stretch(flux: np.ndarray) -> np.ndarray:
    """SDSS-style asinh stretch of fluxes [H, W, 3] to 8 bits (what a survey's colour JPEG holds)."""
    stretched = np.arcsinh(np.clip(flux, 0, None) / 0.15) / np.arcsinh(3.0 / 0.15)
    return np.clip(stretched * 255, 0, 255).astype(np.uint8)


def generate_band_galaxies(
    n: int = 1000,
    size: int = 32,
    seed: int = 0,
    bands: int = 5,
    volunteers: int = 40,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]:
    """The procedural set as a survey archive holds it: float fluxes in ``bands`` bands, with volunteer votes.

    Returns ``(fluxes float32 [n,size,size,bands] with sky noise, rendered classes int64 [n], extras
    [n,2] = (z, z_err), vote fractions float32 [n, classes], class_names)``. Each galaxy gets
    ``volunteers`` simulated votes: most for its rendered class, the rest spread by a confusion that
    grows for faint and small galaxies (so fractions carry how certain a galaxy is, as in Galaxy Zoo).
    """
    sed = band_palette(bands)
    fluxes = np.empty((n, size, size, bands), dtype=np.float32)
    labels = np.empty(n, dtype=np.int64)
    extras = np.empty((n, 2), dtype=np.float32)
    fractions = np.empty((n, len(CLASS_NAMES)), dtype=np.float32)
    votes_rng = np.random.default_rng(seed + 7_000_003)
    for i, (flux, label, z_pair, clarity) in enumerate(_render_all(n, size, seed, 0.0, sed)):
        fluxes[i], labels[i], extras[i] = flux, label, z_pair
        confusion = np.full(len(CLASS_NAMES), 1.0 / len(CLASS_NAMES))
        p = clarity * np.eye(len(CLASS_NAMES))[label] + (1 - clarity) * confusion
        fractions[i] = votes_rng.multinomial(volunteers, p) / volunteers
    return fluxes, labels, extras, fractions, CLASS_NAMES


def _render_all(n: int, size: int, seed: int, label_noise: float, sed: Palette):
    """Yield (flux [size,size,bands], label, (z, z_err), clarity in [0, 1]) per galaxy, in the seed's order."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    for _ in range(n):
        z = 0.02 + 0.18 * rng.beta(2.0, 2.5)
        label = int(rng.choice(len(CLASS_NAMES), p=_class_probabilities(z)))
        # Angular size ~ 1/z at these distances; flux ~ 1/z².
        scale = size * 0.09 * (0.05 / z) ** 0.75 * rng.uniform(0.75, 1.3)
        scale = float(np.clip(scale, 1.2, size * 0.18))
        brightness = float(np.clip((0.05 / z) ** 1.6, 0.12, 3.0)) * rng.uniform(0.7, 1.3)
        cx = (size - 1) / 2 + rng.normal(0, size * 0.02)
        cy = (size - 1) / 2 + rng.normal(0, size * 0.02)
        name = CLASS_NAMES[label]
        if name == "elliptical":
            img = _render_elliptical(xx, yy, cx, cy, scale, rng, sed)
        elif name in ("spiral_cw", "spiral_acw"):
            img = _render_spiral(xx, yy, cx, cy, scale, rng, chirality=1 if name == "spiral_cw" else -1, sed=sed)
        elif name == "edge_on":
            img = _render_spiral(xx, yy, cx, cy, scale, rng, chirality=1, face_on=False, sed=sed)
        else:
            img = _render_merger(xx, yy, cx, cy, scale, rng, sed)
        img = img * brightness
        for _ in range(rng.poisson(1.2)):  # foreground stars
            sx, sy = rng.uniform(0, size, 2)
            star = np.exp(-((xx - sx) ** 2 + (yy - sy) ** 2) / 0.5)
            img += rng.uniform(0.3, 3.0) * star[..., None] * rng.uniform(0.7, 1.0, len(sed.white))
        sigma_psf = rng.uniform(0.7, 1.4) * size / 64
        img = gaussian_filter(img, sigma=(sigma_psf, sigma_psf, 0))
        sky = rng.uniform(0.04, 0.08)
        img += rng.normal(0, 1, img.shape) * np.sqrt(sky**2 + 0.01 * np.clip(img, 0, None))
        if rng.random() < label_noise:
            label = int(rng.integers(len(CLASS_NAMES)))
        z_err = 0.004 + 0.02 * rng.random()
        # Volunteers see bright, large galaxies clearly; faint, small ones they guess at.
        clarity = float(np.clip(0.35 + 0.25 * np.log1p(brightness * scale / 2.0), 0.25, 0.95))
        yield img, label, (max(0.003, z + rng.normal(0, z_err)), z_err), clarity
