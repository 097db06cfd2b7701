"""Copy old weights into larger arrays, with zeros or fresh values elsewhere.

A grown weight is described axis by axis. Along each axis an index map
gives, for every position of the new array, the position of the old array
it comes from (-1 for a new position), and a boolean mask flags the new
positions that must be zero. An entry of the new array is:

- the old entry, when every axis maps it to an old position;
- zero, when some axis puts it at a new position flagged as zero (the
  incoming side of a new unit, or a side that feeds the residual stream);
- otherwise a fresh value drawn from the layer's own initializer, so that
  the new capacity trains like newly created weights.
"""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class AxisMap:
    """Source positions along one axis of a grown weight.

    Attributes:
        source: int array, one entry per new position: the old position it
            copies, or -1 for a new position. An old position may appear
            more than once (a duplicated key/value head).
        zero_new: bool array of the same length. `True` at a new position
            makes every entry in that slice zero.
    """

    source: np.ndarray
    zero_new: np.ndarray

    @classmethod
    def extend(cls, old_size, new_size, zero):
        """Keep the old positions first and append new ones."""
        source = np.concatenate(
            [np.arange(old_size), np.full(new_size - old_size, -1)]
        ).astype(np.int64)
        zero_new = np.full(new_size, bool(zero)) & (source < 0)
        return cls(source, zero_new)

    @classmethod
    def identity(cls, size):
        return cls(np.arange(size, dtype=np.int64), np.zeros(size, bool))

    @classmethod
    def from_blocks(cls, block_sources, block_size, zero_blocks):
        """Build a map over blocks of `block_size` features, e.g. heads.

        `block_sources[j]` is the old block copied into new block `j`, or -1;
        `zero_blocks[j]` flags a new block whose slice must be zero.
        """
        offsets = np.arange(block_size)
        parts = []
        for block in block_sources:
            if block < 0:
                parts.append(np.full(block_size, -1))
            else:
                parts.append(block * block_size + offsets)
        source = np.concatenate(parts).astype(np.int64)
        zero_new = np.repeat(np.asarray(zero_blocks, bool), block_size)
        return cls(source, zero_new & (source < 0))

    def with_new_zero(self):
        """Return this map with every new position flagged as zero."""
        return AxisMap(self.source, self.source < 0)

    def with_new_fresh(self):
        """Return this map with every new position left fresh."""
        return AxisMap(self.source, np.zeros(len(self.source), bool))

    @property
    def new_size(self):
        return len(self.source)


@dataclasses.dataclass(frozen=True)
class WeightTransfer:
    """Fill rule of one weight of the grown model.

    Attributes:
        source_path: path of the old variable, or `None` for a weight of a
            new block, which keeps its fresh values apart from `zero`.
        axes: one `AxisMap` per axis (empty when `source_path` is None).
        scale: factor applied to the whole grown array (RMS norm gains).
        zero: for a new block's weight, whether it is all zero.
    """

    source_path: str
    axes: tuple = ()
    scale: float = 1.0
    zero: bool = False

    def apply(self, old_value, fresh_value):
        """Return the grown array from the old array and fresh values."""
        fresh_value = np.asarray(fresh_value)
        if self.source_path is None:
            if self.zero:
                return np.zeros_like(fresh_value)
            return fresh_value * np.asarray(self.scale, fresh_value.dtype)

        result = np.array(fresh_value, copy=True)
        expected = tuple(axis.new_size for axis in self.axes)
        if result.shape != expected:
            raise ValueError(
                f"Grown weight for {self.source_path!r} has shape "
                f"{result.shape}, but the growth plan expects {expected}."
            )

        # Zero every slice that a zero-flagged new position touches.
        for axis, axis_map in enumerate(self.axes):
            if axis_map.zero_new.any():
                index = [slice(None)] * result.ndim
                index[axis] = axis_map.zero_new
                result[tuple(index)] = 0

        new_positions = [np.nonzero(a.source >= 0)[0] for a in self.axes]
        old_positions = [a.source[a.source >= 0] for a in self.axes]
        result[np.ix_(*new_positions)] = np.asarray(old_value)[
            np.ix_(*old_positions)
        ]
        return result * np.asarray(self.scale, result.dtype)
