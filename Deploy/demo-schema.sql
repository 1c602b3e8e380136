-- Demo data for the quickstart: a small shop with products (names, descriptions, prices,
-- categories) and users with bios. Deterministic: the same rows on every machine.
CREATE TABLE categories (
    id   int PRIMARY KEY,
    name text NOT NULL
);

CREATE TABLE products (
    id          bigint PRIMARY KEY,
    name        text NOT NULL,
    description text NOT NULL,
    price       numeric(10, 2) NOT NULL,
    category_id int REFERENCES categories (id),
    stock       int NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id         bigint PRIMARY KEY,
    name       text NOT NULL,
    city       text NOT NULL,
    bio        text,
    created_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO categories VALUES
    (1, 'Kitchen'), (2, 'Outdoor'), (3, 'Office'), (4, 'Lighting'), (5, 'Audio'),
    (6, 'Garden'), (7, 'Travel'), (8, 'Fitness');

WITH words AS (
    SELECT
        ARRAY['Compact', 'Rugged', 'Elegant', 'Lightweight', 'Cordless', 'Foldable', 'Insulated', 'Adjustable',
              'Waterproof', 'Vintage', 'Ergonomic', 'Solar', 'Wireless', 'Handmade', 'Stackable', 'Quiet'] AS adjectives,
        ARRAY['Cast Iron', 'Bamboo', 'Stainless Steel', 'Oak', 'Linen', 'Ceramic', 'Recycled Plastic', 'Copper',
              'Walnut', 'Aluminium', 'Wool', 'Glass'] AS materials,
        ARRAY['Skillet', 'Tent', 'Desk Lamp', 'Backpack', 'Kettle', 'Headphones', 'Chair', 'Water Bottle',
              'Speaker', 'Planter', 'Notebook', 'Yoga Mat', 'Lantern', 'Chef Knife', 'Monitor Stand', 'Blanket',
              'Travel Mug', 'Bike Light', 'Garden Hose', 'Dumbbell'] AS nouns,
        ARRAY[3, 2, 4, 7, 1, 5, 3, 1, 5, 6, 3, 8, 2, 1, 3, 7, 7, 2, 6, 8] AS noun_categories,
        ARRAY['keeps heat for hours', 'survives a week of rain', 'packs down to the size of a book',
              'charges over USB-C', 'is dishwasher safe', 'runs whisper quiet', 'ships fully assembled',
              'folds flat for storage', 'is made from reclaimed material', 'has a lifetime warranty',
              'pairs with any phone', 'weighs less than a kilo'] AS features,
        ARRAY['weekend campers', 'small apartments', 'home baristas', 'remote workers', 'cyclists',
              'balcony gardeners', 'long-haul travellers', 'beginner runners'] AS audiences
)
INSERT INTO products (id, name, description, price, category_id, stock)
SELECT g,
       adjectives[1 + a] || ' ' || materials[1 + m] || ' ' || nouns[1 + n],
       CASE WHEN left(adjectives[1 + a], 1) IN ('A', 'E', 'I', 'O', 'U') THEN 'An ' ELSE 'A ' END
           || lower(adjectives[1 + a]) || ' ' || lower(nouns[1 + n]) || ' in ' || lower(materials[1 + m])
           || ' that ' || features[1 + f1] || ' and ' || features[1 + (f1 + 1 + f2) % 12]
           || '. Made for ' || audiences[1 + u] || '.',
       round((5 + abs(hashtext('price' || g)) % 49500 / 100.0)::numeric, 2),
       noun_categories[1 + n],
       abs(hashtext('stock' || g)) % 250
  FROM words,
       generate_series(1, 3000) AS g,
       LATERAL (SELECT abs(hashtext('a' || g)) % 16 AS a, abs(hashtext('m' || g)) % 12 AS m,
                       abs(hashtext('n' || g)) % 20 AS n, abs(hashtext('f' || g)) % 12 AS f1,
                       abs(hashtext('g' || g)) % 11 AS f2, abs(hashtext('u' || g)) % 8 AS u) AS pick;

WITH words AS (
    SELECT
        ARRAY['Ada', 'Grace', 'Alan', 'Edsger', 'Barbara', 'Donald', 'Frances', 'Ken', 'Radia', 'Linus',
              'Margaret', 'Dennis', 'Sophie', 'Tim', 'Hedy', 'John'] AS first_names,
        ARRAY['Lovelace', 'Hopper', 'Turing', 'Dijkstra', 'Liskov', 'Knuth', 'Allen', 'Thompson', 'Perlman',
              'Torvalds', 'Hamilton', 'Ritchie', 'Wilson', 'Berners-Lee', 'Lamarr', 'McCarthy'] AS last_names,
        ARRAY['Lisbon', 'Oslo', 'Montreal', 'Kyoto', 'Nairobi', 'Valparaíso', 'Tallinn', 'Melbourne'] AS cities,
        ARRAY['bakes sourdough every Sunday', 'restores old bicycles', 'climbs in the Alps each summer',
              'writes about distributed databases', 'grows tomatoes on a tiny balcony', 'runs a book club',
              'collects vinyl jazz records', 'teaches kids to code', 'paddles a sea kayak', 'brews coffee obsessively'] AS hobbies,
        ARRAY['backend engineer', 'product designer', 'data analyst', 'nurse', 'carpenter', 'teacher',
              'photographer', 'chef'] AS jobs
)
INSERT INTO users (id, name, city, bio)
SELECT g,
       first_names[1 + abs(hashtext('first' || g)) % 16] || ' ' || last_names[1 + abs(hashtext('last' || g)) % 16],
       cities[1 + c],
       CASE WHEN g % 10 = 0 THEN NULL
            ELSE initcap(jobs[1 + abs(hashtext('job' || g)) % 8]) || ' in ' || cities[1 + c] || ' who '
                 || hobbies[1 + h] || ' and ' || hobbies[1 + (h + 1 + abs(hashtext('h2' || g)) % 9) % 10] || '.'
       END
  FROM words,
       generate_series(1, 2000) AS g,
       LATERAL (SELECT abs(hashtext('city' || g)) % 8 AS c, abs(hashtext('hobby' || g)) % 10 AS h) AS pick;

ANALYZE;
