# Runs the reference receiver under puma: puma -b tcp://127.0.0.1:PORT -w 2 -t 4:4 config.ru
require 'openssl'
require_relative 'app'
set :environment, :production
set :logging, false
run Sinatra::Application
