CREATE DATABASE renda_city OWNER renda;
CREATE DATABASE renda_county OWNER renda;
