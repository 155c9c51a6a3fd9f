from PIL import Image

from keras_ldrop.data import get_dataset, load_domains
from keras_ldrop.data.sample_tree import write_sample_tree


def test_sample_tree_is_a_readable_pacs_layout(tmp_path):
    root = write_sample_tree(tmp_path, image_shape=(30, 40), images_per_class=1)
    assert root == tmp_path / "PACS"
    domains = load_domains("pacs", tmp_path)
    spec = get_dataset("pacs")
    assert [len(domain) for domain in domains] == [spec.num_classes] * 4
    for domain in domains:
        assert sorted(domain.labels) == list(range(spec.num_classes))
        with Image.open(domain.paths[0]) as image:
            assert image.size == (40, 30)
    sketch = domains[spec.domains.index("sketch")]
    assert sketch.paths[0].endswith("/dog/00000.png")  # PACS sketches are PNG
