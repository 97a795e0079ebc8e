"""The paper's augmentation (3.3) inside the model, so on a GPU it runs on the device and the
CPU only reads stamps.

`RandomView` takes stored-size stamps. While training, each galaxy's cutout is shifted by up
to `max_shift` px in x and y, with real pixels from the stored stamp's margin rather than
padding, and flipped up-down and left-right with probability 1/2 each, fresh every step;
otherwise it is the centre crop the deployable model takes. Keras' own layers do not fit:
`RandomCrop` draws one window per batch and resizes at inference, `RandomFlip` and
`RandomTranslation` pad or reflect instead of using the margin. The draws come from a
seeded `keras.random.SeedGenerator`, so a run repeats from its seed on a given backend.

`trainer` puts the layer, with the min-max normalisation that must follow the crop, in front
of the core network: the model `fit` trains. The deployable model (`export_model`) keeps
its plain centre crop, so logged models are unchanged.
"""

from __future__ import annotations

import keras
from keras import ops

from hzexp.config import PreprocessConfig
from hzexp.data.store import IMAGE_BANDS
from hzexp.model.preprocessing import Float32Layer, MinMaxNormalise, centre_crop


@keras.saving.register_keras_serializable(package="hzexp")
class RandomView(Float32Layer):
    """Stored-size stamps in, `cutout`-px views out: randomly shifted and flipped per galaxy
    while training (see the module), centred otherwise."""

    def __init__(self, cutout: int, max_shift: int = 0, flips: bool = False,
                 seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if max_shift < 0:
            raise ValueError(f"max_shift must be >= 0 px, got {max_shift}")
        self.cutout = int(cutout)
        self.max_shift = int(max_shift)
        self.flips = bool(flips)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=False):
        if not training or (self.max_shift == 0 and not self.flips):
            return centre_crop(images, self.cutout)
        images = ops.convert_to_tensor(images)
        stored, bands = images.shape[-3], images.shape[-1]
        if stored < self.cutout + 2 * self.max_shift:
            raise ValueError(f"{stored} px stamps leave no room for {self.max_shift} px shifts "
                             f"of a {self.cutout} px cutout")
        n = ops.shape(images)[0]
        # Each galaxy's shifted, perhaps reversed, rows, then columns: one gather each from
        # the batch's rows laid end to end (int32 indices; Keras' take_along_axis would
        # broadcast int64 ones, which oneDNN does not run).
        first = ops.arange(n, dtype="int32")[:, None] * stored
        view = ops.take(ops.reshape(images, (-1, stored, bands)),
                        first + self._window(n, stored), axis=0)  # (n, cutout, stored, bands)
        view = ops.reshape(ops.transpose(view, (0, 2, 1, 3)), (-1, self.cutout, bands))
        view = ops.take(view, first + self._window(n, stored), axis=0)
        return ops.transpose(view, (0, 2, 1, 3))

    def _window(self, n, stored: int):
        """(n, cutout) pixel indices along one axis: a window shifted by a random integer in
        [-max_shift, max_shift] from the centred one, reversed with probability 1/2 when
        `flips` (the same convention as `centre_crop` for odd margins)."""
        steps = ops.arange(self.cutout, dtype="int32")[None, :]
        shift = keras.random.randint((n, 1), -self.max_shift, self.max_shift + 1,
                                     seed=self.seed_generator, dtype="int32")
        if self.flips:
            reversed_ = keras.random.uniform((n, 1), seed=self.seed_generator) < 0.5
            steps = ops.where(reversed_, self.cutout - 1 - steps, steps)
        return (stored - self.cutout) // 2 + shift + steps

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-3], self.cutout, self.cutout, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "cutout": self.cutout, "max_shift": self.max_shift,
                "flips": self.flips, "seed": self.seed}


def max_shift_pixels(preprocess: PreprocessConfig, stored_size: int) -> int:
    """Largest augmentation shift in px: `shift_fraction` of the cutout, limited by the
    margin the stored stamp has around the cutout (no shifts at cutout == stored size)."""
    wanted = int(round(preprocess.shift_fraction * preprocess.cutout))
    return min(wanted, (stored_size - preprocess.cutout) // 2)


def trainer(core: keras.Model, preprocess: PreprocessConfig, stored_size: int,
            seed: int | None) -> keras.Model:
    """The model `fit` trains and that predicts the validation and test splits: `image`
    (stored_size, stored_size, 4) raw fluxes and `mags` as the core takes them ->
    `RandomView` (shifts and flips as `preprocess` asks) -> min-max normalisation -> `core`.
    The core's weights are shared, not copied, so training this trains the core that
    `export_model` deploys."""
    cutout = core.get_layer("image").output.shape[1]
    max_shift = max_shift_pixels(preprocess, stored_size) if preprocess.augment else 0
    image = keras.Input((stored_size, stored_size, len(IMAGE_BANDS)), name="image")
    mags = keras.Input(core.get_layer("mags").output.shape[1:], name="mags")
    view = RandomView(cutout, max_shift, preprocess.flips and preprocess.augment, seed,
                      name="random_view")(image)
    normalised = MinMaxNormalise(name="minmax_normalise")(view)
    return keras.Model({"image": image, "mags": mags}, core([normalised, mags]),
                       name=f"{core.name}_trainer")
