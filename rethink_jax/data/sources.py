"""tfds builders for the offline copies of the paper's data sets.

Machines without internet cannot run tfds' own ``cifar10``, ``fashion_mnist``
or ``imagenette`` downloads. These builders prepare the same data through the
same tfds machinery (``download_and_prepare`` into a ``data_dir``, read back
with ``as_dataset`` / ``tfds.data_source``) from local files given as the
builder's ``manual_dir``:

* ``cifar10_jpeg``: the full CIFAR-10 (50,000 / 10,000) as JPEG files in
  ``cifar10-jpeg.tar.gz`` (``train/<class>/NNNN.jpg``, ``test/...``). Labels
  follow the canonical CIFAR-10 order.
* ``fashion_mnist_idx``: the four original IDX files (Debian package
  ``dataset-fashion-mnist``). Debian re-compresses the gzip files, so the
  *decompressed* IDX payload is what is verified.
* ``imagenette224_jpeg``: Imagenette (10 ImageNet classes, 224x224 JPEG,
  9,469 train / 3,925 val) from ``imagenette-224-jpeg.tar.gz``. The JPEG
  bytes are stored as they are, not re-encoded.

Every source file is checked against a pinned SHA-256 before anything is
written; tfds writes into a temporary directory and renames it only when the
preparation succeeds, so a failed preparation leaves nothing a later run
would trust.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile

import numpy as np
import tensorflow_datasets as tfds

from rethink_jax.data.dataset import DataError

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog",
                   "frog", "horse", "ship", "truck")
FASHION_MNIST_CLASSES = ("t-shirt_top", "trouser", "pullover", "dress",
                         "coat", "sandal", "shirt", "sneaker", "bag",
                         "ankle_boot")
# The ten ImageNet synsets of Imagenette, in tfds' label order.
IMAGENETTE_WNIDS = ("n01440764", "n02102040", "n02979186", "n03000684",
                    "n03028079", "n03394916", "n03417042", "n03425413",
                    "n03445777", "n03888257")

CIFAR10_ARCHIVE = "cifar10-jpeg.tar.gz"
CIFAR10_SHA256 = (
    "45b041e867f5a40f79bfde38d3dd1fd511103d50068c1afecf6445e25234d4db")
IMAGENETTE_ARCHIVE = "imagenette-224-jpeg.tar.gz"
IMAGENETTE_SHA256 = (
    "ad177a33d5d669c7915dabade97c388922bc1f5b17d268dd98e74b9a3c9096c5")
# SHA-256 of the decompressed IDX files (the payload, not Debian's gzip).
FASHION_MNIST_IDX_SHA256 = {
    "train-images-idx3-ubyte":
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte":
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte":
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte":
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}


def file_sha256(path: os.PathLike | str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      digest.update(chunk)
  return digest.hexdigest()


def verify_archive(path, expected_sha256: str, what: str) -> None:
  """Raises DataError if ``path`` is missing or its SHA-256 is not expected."""
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise DataError(
        f"{what}: archive {path} not found. Put the file there, or point "
        f"RETHINK_JAX_OFFLINE_DIR (or the source_dir argument) at the folder "
        f"that holds it.")
  actual = file_sha256(path)
  if actual != expected_sha256:
    raise DataError(
        f"{what}: archive {path} is corrupt or not the expected file "
        f"(sha256 {actual}, expected {expected_sha256}). Copy it again from "
        f"its source; nothing was prepared.")


def _jpeg_members(archive: str, split_folder: str):
  """Yields (member name, bytes) of the JPEG files under ``split_folder``."""
  try:
    with tarfile.open(archive, "r:gz") as tar:
      for member in tar:
        parts = member.name.split("/")
        if (member.isfile() and len(parts) == 3 and parts[0] == split_folder
            and parts[2].lower().endswith((".jpg", ".jpeg"))):
          file = tar.extractfile(member)
          assert file is not None  # a regular file
          yield member.name, file.read()
  except (tarfile.TarError, EOFError, OSError, gzip.BadGzipFile) as e:
    raise DataError(f"cannot read {archive}: {e}. The archive is damaged; "
                    f"copy it again.") from e


class Cifar10Jpeg(tfds.core.GeneratorBasedBuilder):
  """CIFAR-10 from the offline JPEG archive (paper Section 2, data set)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "CIFAR-10 re-encoded as JPEG (quality 75)."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      f"Place {CIFAR10_ARCHIVE} (sha256 {CIFAR10_SHA256}) in manual_dir.")

  def _info(self):
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "id": tfds.features.Text(),
            # The archive's JPEG bytes are stored as they are.
            "image": tfds.features.Image(shape=(32, 32, 3),
                                         encoding_format="jpeg"),
            "label": tfds.features.ClassLabel(names=CIFAR10_CLASSES),
        }),
        supervised_keys=("image", "label"),
        homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
    )

  def _split_generators(self, dl_manager):
    archive = os.path.join(dl_manager.manual_dir, CIFAR10_ARCHIVE)
    verify_archive(archive, CIFAR10_SHA256, "cifar10")
    return {"train": self._generate_examples(archive, "train"),
            "test": self._generate_examples(archive, "test")}

  def _generate_examples(self, archive, split):
    for name, data in _jpeg_members(archive, split):
      class_name = name.split("/")[1]
      if class_name not in CIFAR10_CLASSES:
        raise DataError(f"unexpected class folder {class_name!r} in "
                        f"{archive}; expected one of {CIFAR10_CLASSES}.")
      yield name, {"id": name, "image": io.BytesIO(data), "label": class_name}


class Imagenette224Jpeg(tfds.core.GeneratorBasedBuilder):
  """Imagenette (10 real ImageNet classes, 224x224) from the offline archive.

  The stand-in for ImageNet / Inception V3 (paper Appendix B) on machines
  without the ILSVRC-2012 download.
  """

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Imagenette 224x224 JPEG, 9,469 / 3,925."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      f"Place {IMAGENETTE_ARCHIVE} (sha256 {IMAGENETTE_SHA256}) in "
      f"manual_dir.")

  def _info(self):
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "file_name": tfds.features.Text(),
            "image": tfds.features.Image(shape=(None, None, 3),
                                         encoding_format="jpeg"),
            "label": tfds.features.ClassLabel(names=IMAGENETTE_WNIDS),
        }),
        supervised_keys=("image", "label"),
        homepage="https://github.com/fastai/imagenette",
    )

  def _split_generators(self, dl_manager):
    archive = os.path.join(dl_manager.manual_dir, IMAGENETTE_ARCHIVE)
    verify_archive(archive, IMAGENETTE_SHA256, "imagenette")
    return {"train": self._generate_examples(archive, "train"),
            "validation": self._generate_examples(archive, "val")}

  def _generate_examples(self, archive, split):
    for name, data in _jpeg_members(archive, split):
      wnid = name.split("/")[1]
      if wnid not in IMAGENETTE_WNIDS:
        raise DataError(f"unexpected class folder {wnid!r} in {archive}.")
      # A file object keeps the JPEG bytes as they are (no re-encoding).
      yield name, {"file_name": name, "image": io.BytesIO(data),
                   "label": wnid}


def read_idx(path: os.PathLike | str, expected_sha256: str | None = None
             ) -> np.ndarray:
  """Reads a (possibly gzip'd) IDX file, verifying its decompressed payload."""
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise DataError(
        f"IDX file {path} not found. On Debian/Ubuntu run "
        f"`apt-get install -y dataset-fashion-mnist`, or point "
        f"RETHINK_JAX_FASHION_MNIST_DIR at a folder with the IDX files.")
  opener = gzip.open if path.endswith(".gz") else open
  try:
    with opener(path, "rb") as f:
      payload = f.read()
  except (OSError, EOFError) as e:
    raise DataError(f"cannot read {path}: {e}. Reinstall the file.") from e
  if expected_sha256 is not None:
    actual = hashlib.sha256(payload).hexdigest()
    if actual != expected_sha256:
      raise DataError(f"{path}: IDX payload sha256 {actual} differs from the "
                      f"expected {expected_sha256}; the file is corrupt or "
                      f"not Fashion-MNIST. Reinstall it.")
  if len(payload) < 4 or payload[0] != 0 or payload[1] != 0:
    raise DataError(f"{path} is not an IDX file (bad magic number).")
  if payload[2] != 0x08:
    raise DataError(f"{path}: only uint8 IDX files are supported.")
  ndim = payload[3]
  shape = tuple(int.from_bytes(payload[4 + 4 * i:8 + 4 * i], "big")
                for i in range(ndim))
  data = np.frombuffer(payload, dtype=np.uint8, offset=4 + 4 * ndim)
  if data.size != int(np.prod(shape)):
    raise DataError(f"{path} is truncated: header says {shape}, found "
                    f"{data.size} values.")
  return data.reshape(shape)


def _find_idx(folder: str, stem: str) -> str:
  for candidate in (stem + ".gz", stem):
    path = os.path.join(folder, candidate)
    if os.path.isfile(path):
      return path
  return os.path.join(folder, stem + ".gz")


class FashionMnistIdx(tfds.core.GeneratorBasedBuilder):
  """Fashion-MNIST from the original IDX files (paper Section 5 analogue)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Fashion-MNIST from local IDX files."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Put the four Fashion-MNIST IDX files (gzip'd or not) in manual_dir; "
      "`apt-get install dataset-fashion-mnist` puts them in "
      "/usr/share/datasets/fashion-mnist.")

  def _info(self):
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(28, 28, 1)),
            "label": tfds.features.ClassLabel(names=FASHION_MNIST_CLASSES),
        }),
        supervised_keys=("image", "label"),
        homepage="https://github.com/zalandoresearch/fashion-mnist",
    )

  def _split_generators(self, dl_manager):
    folder = os.fspath(dl_manager.manual_dir)
    arrays = {}
    for stem, sha in FASHION_MNIST_IDX_SHA256.items():
      arrays[stem] = read_idx(_find_idx(folder, stem), sha)
    return {
        "train": self._generate_examples(arrays["train-images-idx3-ubyte"],
                                         arrays["train-labels-idx1-ubyte"]),
        "test": self._generate_examples(arrays["t10k-images-idx3-ubyte"],
                                        arrays["t10k-labels-idx1-ubyte"]),
    }

  def _generate_examples(self, images, labels):
    from PIL import Image  # pylint: disable=g-import-not-at-top
    for i, (image, label) in enumerate(zip(images, labels)):
      # PIL's PNG encoder is much faster than tfds' per-image TF encoding;
      # PNG is lossless, so the stored pixels are the IDX pixels.
      png = io.BytesIO()
      Image.fromarray(image, mode="L").save(png, format="PNG")
      png.seek(0)
      yield i, {"image": png, "label": int(label)}
