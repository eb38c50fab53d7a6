"""Cell codes and the tiny renderer shared by the project's memory tasks.

Every task describes what the agent sees as a small grid of integer *cell codes*
(a colour, an apple, a wall or nothing). The vector observation one-hot encodes
the codes; the image observation paints each cell as a square of pixels, so both
observation types carry exactly the same information.
"""

from __future__ import annotations

import math

import numpy as np

# Distinct, saturated colours; a task with K colours uses the first K rows.
PALETTE = np.array(
    [
        (255, 0, 0),  # red
        (0, 255, 0),  # green
        (0, 0, 255),  # blue
        (255, 255, 0),  # yellow
        (255, 0, 255),  # magenta
        (0, 255, 255),  # cyan
        (255, 128, 0),  # orange
        (128, 0, 255),  # purple
    ],
    dtype=np.uint8,
)
MAX_COLOURS = len(PALETTE)
EMPTY = -1
WHITE = np.array((255, 255, 255), dtype=np.uint8)
GREY = np.array((128, 128, 128), dtype=np.uint8)


def apple_code(num_colours: int) -> int:
    """Code of an apple (distractor reward) in a task with ``num_colours`` colours."""
    return num_colours


def wall_code(num_colours: int) -> int:
    """Code of a wall cell in a task with ``num_colours`` colours."""
    return num_colours + 1


def num_codes(num_colours: int) -> int:
    """Channels of the one-hot encoding: the colours, apple, wall (``EMPTY`` is all zeros)."""
    return num_colours + 2


def one_hot_codes(codes: np.ndarray, num_colours: int) -> np.ndarray:
    """One-hot encode cell codes.

    Args:
        codes: int array ``[N]`` of codes in ``{EMPTY, 0, ..., num_colours + 1}``.
    Returns:
        float32 ``[N * num_codes]``: row n is the one-hot of ``codes[n]`` (zeros for ``EMPTY``).
    """
    # Rows 0..n-1 of eye(n + 1, n) are the one-hots; its last row (indexed by EMPTY = -1) is zero.
    table = np.eye(num_codes(num_colours) + 1, num_codes(num_colours), dtype=np.float32)
    return table[codes].reshape(-1)


def code_colours(codes: np.ndarray, num_colours: int) -> np.ndarray:
    """RGB colour of each code: palette colours, white apples, grey walls, black ``EMPTY``.

    Args:
        codes: int array of any shape ``[...]``.
    Returns:
        uint8 ``[..., 3]``.
    """
    table = np.zeros((num_codes(num_colours) + 1, 3), dtype=np.uint8)
    table[:num_colours] = PALETTE[:num_colours]
    table[apple_code(num_colours)] = WHITE
    table[wall_code(num_colours)] = GREY
    # EMPTY (-1) indexes the last row, which stays black.
    return table[codes]


def slot_grid(codes: np.ndarray) -> np.ndarray:
    """Arrange a row of ``K`` slot codes ``[K]`` in a near-square grid ``[rows, cols]`` padded with ``EMPTY``."""
    cols = math.ceil(math.sqrt(codes.shape[0]))
    rows = math.ceil(codes.shape[0] / cols)
    grid = np.full(rows * cols, EMPTY, dtype=np.int64)
    grid[: codes.shape[0]] = codes
    return grid.reshape(rows, cols)


def paint(grid: np.ndarray, num_colours: int, image_size: int) -> np.ndarray:
    """Paint a grid of codes ``[R, C]`` into an ``[image_size, image_size, 3]`` uint8 image (HWC).

    Each cell becomes a square of ``image_size // max(R, C)`` pixels from the top-left
    corner; the remainder stays black.
    """
    cell_px = image_size // max(grid.shape)
    cells = np.kron(code_colours(grid, num_colours), np.ones((cell_px, cell_px, 1), dtype=np.uint8))
    image = np.zeros((image_size, image_size, 3), dtype=np.uint8)
    image[: cells.shape[0], : cells.shape[1]] = cells
    return image
