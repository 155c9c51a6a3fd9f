import pytest

from keras_ldrop.data import DATASETS, get_dataset


def test_domainbed_domain_orders_and_class_counts():
    expected = {
        "vlcs": (("Caltech101", "LabelMe", "SUN09", "VOC2007"), 5),
        "pacs": (("art_painting", "cartoon", "photo", "sketch"), 7),
        "office_home": (("Art", "Clipart", "Product", "Real World"), 65),
        "terra_incognita": (
            ("location_100", "location_38", "location_43", "location_46"),
            10,
        ),
        "domain_net": (
            ("clipart", "infograph", "painting", "quickdraw", "real", "sketch"),
            345,
        ),
        "rotated_mnist": (("0", "15", "30", "45", "60", "75"), 10),
        "colored_mnist": (("+90%", "+80%", "-90%"), 2),
    }
    for name, (domains, num_classes) in expected.items():
        spec = get_dataset(name)
        assert spec.domains == domains
        assert spec.num_classes == num_classes
        assert len(set(spec.classes)) == num_classes


def test_photo_datasets_list_classes_in_imagefolder_order():
    # DomainBed's ImageFolder numbers classes in sorted folder-name order.
    for name in ("vlcs", "pacs", "office_home", "terra_incognita", "domain_net"):
        spec = get_dataset(name)
        assert list(spec.classes) == sorted(spec.classes)
        assert list(spec.domains) == sorted(spec.domains)


def test_training_defaults_follow_the_paper():
    small = get_dataset("pacs")
    assert (small.steps, small.checkpoint_freq, small.lr_drop_steps) == (10000, 300, (5000,))
    assert (small.image_size, small.rate) == (224, 0.9)
    domain_net = get_dataset("domain_net")
    assert (domain_net.steps, domain_net.checkpoint_freq) == (30000, 1000)
    assert domain_net.lr_drop_steps == (15000, 25000)
    assert domain_net.rate == 0.5
    assert domain_net.learning_rates == (3e-3, 5e-3)
    assert not get_dataset("rotated_mnist").augment
    assert small.augment


def test_offline_datasets_need_no_data_dir():
    offline = {name for name, spec in DATASETS.items() if spec.is_offline}
    assert offline == {"pacs_mini", "vlcs_mini", "rotated_mnist", "colored_mnist"}


def test_vlcs_mini_maps_every_renamed_folder_to_a_vlcs_class():
    spec = get_dataset("vlcs_mini")
    assert spec.classes == get_dataset("vlcs").classes
    assert spec.class_of_folder("caltech", "hund") == "dog"
    assert spec.class_of_folder("sun", "vehicle") == "car"
    assert spec.class_of_folder("labelme", "husky") == "dog"
    assert spec.class_of_folder("labelme", "mensch") is None  # renamed in caltech only
    for domain, folder, name in spec.renamed_class_folders:
        assert domain in spec.domains and name in spec.classes


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="Unknown dataset 'pacs2'.*vlcs.*pacs_mini"):
        get_dataset("pacs2")
