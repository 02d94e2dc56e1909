# ruff: noqa: E501  (a data table: one line per field reads better than wrapped tuples)
"""Word lists for the demo shop: categories, brands, product nouns, materials, uses.

All brand names are invented. Each category lists the nouns shoppers type, the
materials and sizes that make titles and facets look like a real catalog, the median
price (prices are drawn log-normally around it) and a few "uses" for descriptions.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CategorySpec:
    path: tuple[str, str]
    nouns: tuple[str, ...]
    brands: tuple[str, ...]
    materials: tuple[str, ...]
    sizes: tuple[str, ...]
    median_price: float
    uses: tuple[str, ...]


COLOURS: tuple[str, ...] = (
    "Black", "White", "Grey", "Navy", "Red", "Green", "Blue", "Beige", "Silver", "Charcoal", "Olive", "Teal",
)  # fmt: skip

ADJECTIVES: tuple[str, ...] = (
    "Premium", "Compact", "Classic", "Pro", "Everyday", "Lightweight", "Heavy-Duty", "Eco", "Deluxe",
    "Essential", "Ultra", "Smart", "Travel", "Modern", "Rugged",
)  # fmt: skip

# Extra query words shoppers add that rarely appear in titles (makes matching imperfect).
QUERY_MODIFIERS: tuple[str, ...] = ("cheap", "best", "small", "large", "new", "sale", "gift")

CATEGORIES: tuple[CategorySpec, ...] = (
    CategorySpec(("Kitchen", "Cookware"), ("frying pan", "saucepan", "stock pot", "wok", "dutch oven", "skillet"),
                 ("Castellan", "Lumen Kitchen", "OakHearth", "Brightforge", "Ferro & Co"),
                 ("cast iron", "stainless steel", "aluminium", "copper", "ceramic"), ("20 cm", "24 cm", "28 cm", "3 qt", "5 qt"),
                 45.0, ("searing and browning", "simmering sauces", "slow braising", "weeknight stir-fries")),
    CategorySpec(("Kitchen", "Small Appliances"), ("blender", "toaster", "electric kettle", "coffee maker", "food processor", "hand mixer"),
                 ("Voltani", "KitchPro", "Brevo", "Aurelle", "Hamlin"),
                 ("stainless steel", "plastic", "glass"), ("1.2 L", "1.7 L", "600 W", "1000 W", "2-slice", "4-slice"),
                 60.0, ("busy mornings", "smoothies and soups", "small kitchens", "entertaining guests")),
    CategorySpec(("Kitchen", "Cutlery"), ("chef knife", "paring knife", "knife set", "bread knife", "kitchen shears", "cutting board"),
                 ("Hanzo Steel", "Edgewell", "Kiri", "Tallow & Tine"),
                 ("carbon steel", "stainless steel", "damascus steel", "bamboo", "walnut"), ("8 inch", "6 inch", "3.5 inch", "5-piece", "12-piece"),
                 38.0, ("precise slicing", "everyday prep", "carving roasts")),
    CategorySpec(("Tools", "Power Tools"), ("cordless drill", "impact driver", "circular saw", "jigsaw", "angle grinder", "orbital sander"),
                 ("Torqline", "Ironridge", "DriveMax", "Kestrel Pro", "Brannock"),
                 ("brushless", "lithium-ion", "corded"), ("12V", "18V", "20V", "1/2 inch", "7-1/4 inch"),
                 110.0, ("drilling into masonry", "weekend DIY projects", "cabinet installs", "deck building")),
    CategorySpec(("Tools", "Hand Tools"), ("claw hammer", "screwdriver set", "wrench set", "pliers", "tape measure", "utility knife"),
                 ("Ironridge", "Stalwart", "Grip & Co", "Benchmark"),
                 ("chrome vanadium", "fiberglass", "steel", "rubber grip"), ("16 oz", "25 ft", "10-piece", "32-piece", "8 inch"),
                 22.0, ("home repairs", "the toolbox", "precise measuring")),
    CategorySpec(("Garden", "Garden Tools"), ("pruning shears", "garden hose", "leaf rake", "shovel", "leaf blower", "watering can"),
                 ("GreenMile", "Fernway", "Yardcraft", "Thornbury"),
                 ("steel", "ash wood", "rubber", "plastic"), ("50 ft", "100 ft", "2 gal", "24 inch"),
                 32.0, ("tidy borders", "autumn clean-ups", "vegetable beds")),
    CategorySpec(("Home", "Bedding"), ("duvet cover", "pillow", "fitted sheet", "weighted blanket", "mattress topper", "throw blanket"),
                 ("Slumbera", "Linenfold", "Nordhaven", "Cloudloom"),
                 ("cotton", "linen", "bamboo", "microfiber", "wool"), ("Twin", "Queen", "King", "Full"),
                 55.0, ("cool summer nights", "cosy winters", "guest rooms")),
    CategorySpec(("Home", "Lighting"), ("desk lamp", "floor lamp", "pendant light", "led strip", "night light", "table lamp"),
                 ("Lumio", "Halden", "Brightside", "Arcwell"),
                 ("brass", "aluminium", "linen shade", "glass", "rattan"), ("40 W", "dimmable", "3000K", "5 m"),
                 42.0, ("reading corners", "home offices", "warm ambient light")),
    CategorySpec(("Home", "Storage"), ("storage bin", "shoe rack", "bookshelf", "laundry basket", "drawer organizer", "coat rack"),
                 ("Stowly", "Boxwood", "Tidyhaus", "Oakline"),
                 ("pine", "metal", "seagrass", "fabric", "plastic"), ("3-tier", "5-tier", "30 L", "60 L"),
                 30.0, ("small apartments", "entryways", "closet clean-outs")),
    CategorySpec(("Home", "Decor"), ("throw pillow", "wall clock", "picture frame", "vase", "scented candle", "wall mirror"),
                 ("Maison Ivy", "Halden", "Copperleaf", "Driftwood Studio"),
                 ("ceramic", "glass", "velvet", "oak", "soy wax"), ("18 inch", "12 inch", "8x10", "5x7"),
                 26.0, ("living rooms", "housewarming gifts", "seasonal refreshes")),
    CategorySpec(("Electronics", "Headphones"), ("wireless earbuds", "over-ear headphones", "noise cancelling headphones", "sports earbuds", "gaming headset"),
                 ("Sonara", "Pulsewave", "Auralis", "Echofield"),
                 ("bluetooth 5.3", "wired", "foam tips"), ("30h battery", "40h battery", "usb-c"),
                 79.0, ("commuting", "workouts", "long flights", "focus at work")),
    CategorySpec(("Electronics", "Chargers & Cables"), ("usb-c cable", "wall charger", "power bank", "wireless charger", "hdmi cable", "car charger"),
                 ("Voltani", "Chargely", "Ampere Works", "Linkline"),
                 ("braided nylon", "gan", "aluminium"), ("1 m", "2 m", "20W", "65W", "10000mAh", "20000mAh"),
                 19.0, ("fast charging", "travel bags", "the desk drawer")),
    CategorySpec(("Electronics", "Smart Home"), ("smart plug", "video doorbell", "smart bulb", "security camera", "smart thermostat", "motion sensor"),
                 ("Nestwise", "Homelink", "Brightside", "Sentri"),
                 ("wifi", "zigbee", "battery powered"), ("2-pack", "4-pack", "1080p", "2K"),
                 48.0, ("automating routines", "keeping an eye on the porch", "saving energy")),
    CategorySpec(("Sports", "Fitness"), ("yoga mat", "dumbbell set", "resistance bands", "kettlebell", "jump rope", "foam roller"),
                 ("Stridewell", "Corefit", "Ironpeak", "Flexa"),
                 ("tpe", "cast iron", "neoprene", "natural rubber"), ("6 mm", "10 kg", "16 kg", "5-pack"),
                 29.0, ("home workouts", "stretching", "strength training")),
    CategorySpec(("Sports", "Cycling"), ("bike helmet", "bike light", "bike lock", "cycling gloves", "bottle cage", "bike pump"),
                 ("Velocita", "Spokeline", "Ridgeway", "Cadence Co"),
                 ("carbon", "aluminium", "steel", "gel padded"), ("S", "M", "L", "800 lumen"),
                 34.0, ("daily commutes", "night rides", "gravel weekends")),
    CategorySpec(("Sports", "Camping"), ("tent", "sleeping bag", "camping stove", "headlamp", "hiking backpack", "camping chair"),
                 ("Trailhead", "Northpine", "Summitry", "Fernway"),
                 ("ripstop nylon", "down", "polyester", "titanium"), ("2-person", "4-person", "35 L", "50 L", "-5C"),
                 72.0, ("backcountry trips", "festival weekends", "car camping")),
    CategorySpec(("Clothing", "Jackets"), ("rain jacket", "down jacket", "fleece jacket", "softshell jacket", "puffer vest", "windbreaker"),
                 ("Northpine", "Aldercoat", "Stormline", "Wilder & Co"),
                 ("gore-tex", "recycled polyester", "merino", "down"), ("S", "M", "L", "XL"),
                 95.0, ("wet commutes", "winter walks", "layering on the trail")),
    CategorySpec(("Clothing", "Footwear"), ("running shoes", "hiking boots", "sneakers", "sandals", "slippers", "trail runners"),
                 ("Stridewell", "Trailhead", "Solemate", "Kinetic"),
                 ("leather", "mesh", "suede", "rubber sole"), ("US 8", "US 9", "US 10", "US 11"),
                 78.0, ("daily runs", "rocky trails", "relaxed weekends")),
    CategorySpec(("Beauty", "Skin Care"), ("face cream", "cleanser", "vitamin c serum", "sunscreen", "lip balm", "eye cream"),
                 ("Dewlab", "Purelle", "Botanica", "Clearwell"),
                 ("fragrance-free", "hyaluronic", "spf 50", "shea butter"), ("30 ml", "50 ml", "100 ml", "4 oz"),
                 23.0, ("dry skin", "daily protection", "sensitive skin")),
    CategorySpec(("Pets", "Dog Supplies"), ("dog bed", "dog leash", "chew toy", "dog bowl", "dog harness", "dog crate"),
                 ("Pawsome", "Barkley", "Happy Tails", "Furnest"),
                 ("memory foam", "nylon", "stainless steel", "rubber"), ("S", "M", "L", "XL"),
                 27.0, ("puppies", "large breeds", "daily walks")),
    CategorySpec(("Office", "Stationery"), ("notebook", "gel pens", "desk organizer", "sticky notes", "planner", "fountain pen"),
                 ("Inkwell", "Papercraft", "Ledgerly", "Quillon"),
                 ("recycled paper", "leather", "bamboo", "metal"), ("A5", "A4", "12-pack", "2025"),
                 12.0, ("journaling", "school", "tidy desks")),
    CategorySpec(("Baby", "Feeding"), ("baby bottle", "high chair", "bib set", "sippy cup", "bottle warmer", "baby spoon"),
                 ("Tiny Nest", "Cuddlebug", "Little Oak", "Bloomi"),
                 ("silicone", "bpa-free plastic", "glass", "bamboo"), ("150 ml", "260 ml", "3-pack", "6-pack"),
                 24.0, ("first meals", "night feeds", "travel")),
)  # fmt: skip
