"""FileSource: shards partition the rows, the shuffle is fixed by the seed, files are hashed."""
import seqio

from xfer_t5x.tasks import data_report, layouts


def _ids(ds):
  return [ex["id"].numpy().decode() + ex["hypothesis"].numpy().decode() for ex in ds]


def test_shards_partition_and_seeded_shuffle(demo_dir):
  src = layouts.file_source(layouts.DataConfig(str(demo_dir)), "xnli.es", [("xnli", "es", {})])
  full = _ids(src.get_dataset("test", shuffle=False))
  assert len(full) == 20
  shards = [_ids(src.get_dataset("test", shuffle=True, seed=7,
                                 shard_info=seqio.ShardInfo(i, 3))) for i in range(3)]
  assert sorted(sum(shards, [])) == sorted(full)
  assert all(not set(a) & set(b) for a in shards for b in shards if a is not b)
  a = _ids(src.get_dataset("test", shuffle=True, seed=1))
  assert a == _ids(src.get_dataset("test", shuffle=True, seed=1))
  assert a != full and sorted(a) == sorted(full)


def test_data_version_hashes_the_files_read(demo_dir):
  data_report.reset_data_report()
  src = layouts.file_source(layouts.DataConfig(str(demo_dir)), "xnli.de", [("xnli", "de", {})])
  list(src.get_dataset("test", shuffle=False))
  (report,) = data_report.data_report("xnli.de")
  assert report["path"].endswith("xnli/xnli.test.tsv") and report["kept"] == 20
  version = data_report.data_version(["xnli.de"])
  list(src.get_dataset("validation", shuffle=False))
  assert data_report.data_version(["xnli.de"]) != version  # a second file was read
  assert len(version) == 64
